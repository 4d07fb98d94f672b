import pytest

from nertool.config import Config, ModelConfig, TrainConfig
from nertool.errors import ConfigError


def test_unknown_keys_rejected():
    with pytest.raises(ConfigError, match="hiden"):
        ModelConfig.from_dict({"hiden_size": 3})
    with pytest.raises(ConfigError, match="unknown section.*modle"):
        Config.from_dict({"modle": {}})


def test_values_checked():
    with pytest.raises(ConfigError):
        TrainConfig(optimizer="adagrad")
    with pytest.raises(ConfigError):
        ModelConfig(dropout=1.5)


def test_toml_round_trip(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[model]\nhidden_size = 64\nchar_encoder = "lstm"\n[train]\nlr = 0.01\n[data]\nscheme = "IOB1"\n')
    c = Config.from_toml(p)
    assert c.model.hidden_size == 64 and c.model.char_encoder == "lstm" and c.train.lr == 0.01 and c.data.scheme == "IOB1"
    assert c.train.replace(lr=None).lr == 0.01  # None means "not given"
    p.write_text("[model\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        Config.from_toml(p)
