import pytest
import torch

from nertool.config import ModelConfig
from nertool.errors import ConfigError
from nertool.model import Emitter, SequenceDropout


def test_sequence_dropout_shares_one_mask_over_positions():
    torch.manual_seed(0)
    drop = SequenceDropout(0.5).train()
    x = torch.ones(8, 13, 20)  # (batch, seq_len, dim)
    y = drop(x)
    # every (sentence, feature) column is either all dropped or all kept (scaled by 1/(1-p))
    assert set(y.unique().tolist()) == {0.0, 2.0}
    assert (y == y[:, :1, :]).all()
    assert 0 < (y == 0).float().mean() < 1
    assert torch.equal(drop.eval()(x), x)


def test_token_dropout_masks_positions_independently():
    torch.manual_seed(0)
    e = Emitter(ModelConfig(), n_words=10, n_tuned=10, n_chars=5, n_labels=3).train()
    y = e.dropout(torch.ones(8, 13, 20))
    assert not (y == y[:, :1, :]).all()


def test_sequence_dropout_emitter_is_scriptable_and_deterministic_in_eval():
    e = Emitter(ModelConfig(dropout_mask="sequence", hidden_size=8), n_words=10, n_tuned=10, n_chars=5, n_labels=3).eval()
    s = torch.jit.script(e)
    words = torch.tensor([[2, 3, 4], [5, 6, 0]])
    chars = torch.tensor([[0, 0], [2, 3], [3, 4]])
    char_index = torch.tensor([[1, 2, 1], [2, 1, 0]])
    mask = words != 0
    assert torch.allclose(s(words, chars, char_index, mask), e(words, chars, char_index, mask))


def test_dropout_mask_value_checked():
    with pytest.raises(ConfigError, match="dropout_mask"):
        ModelConfig(dropout_mask="word")
