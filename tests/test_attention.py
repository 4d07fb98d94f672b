"""The attention variant: masked self-attention over the Bi-LSTM states."""
import pytest
import torch

from nertool.config import Config, ModelConfig
from nertool.errors import ConfigError
from nertool.model.network import BiLstmCrf, StateAttention


def _model(**changes):
    cfg = ModelConfig(hidden_size=8, char_hidden=6, attention=True, attention_dropout=0.0, **changes)
    torch.manual_seed(0)
    return BiLstmCrf(cfg, 30, 30, 20, ["O", "B-X", "I-X"], "IOB2").eval()


def _batch(lengths, seq_len, seed=1):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(seq_len).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    words = torch.randint(2, 30, mask.shape, generator=g) * mask
    chars = torch.randint(1, 20, (40, 7), generator=g)
    chars[0] = 0
    char_index = torch.randint(1, 40, mask.shape, generator=g) * mask
    return words, chars, char_index, mask


@pytest.mark.parametrize("combine,window", [("residual", 128), ("concat", 128), ("residual", 3)])
def test_padding_never_changes_the_outputs_of_real_tokens(combine, window):
    m = _model(attention_combine=combine, attention_window=window)
    words, chars, char_index, mask = _batch([9, 4, 1], 9)
    em = m.emissions(words, chars, char_index, mask)
    assert em.shape == (3, 9, 3)
    noisy_words = torch.where(mask, words, torch.randint(2, 30, words.shape))
    noisy_index = torch.where(mask, char_index, torch.randint(1, 40, words.shape))
    em2 = m.emissions(noisy_words, chars, noisy_index, mask)
    assert torch.allclose(em[mask], em2[mask], atol=1e-6)
    # and a sentence tagged alone equals the same sentence in a padded batch
    alone = m.emissions(words[1:2, :4], chars, char_index[1:2, :4], mask[1:2, :4])
    assert torch.allclose(alone[0], em[1, :4], atol=1e-5)


def test_out_dim_and_window_blocks_equal_dense_banded_attention():
    torch.manual_seed(0)
    res, cat = StateAttention(16, 4, 0.0, "residual", 5).eval(), StateAttention(16, 4, 0.0, "concat", 5).eval()
    assert (res.out_dim, cat.out_dim) == (16, 32)
    x = torch.randn(2, 23, 16)
    mask = torch.ones(2, 23, dtype=torch.bool)
    mask[1, 15:] = False
    pos = torch.arange(23)
    far = (pos[:, None] - pos[None, :]).abs() > 5
    ref, _ = res.attn(x, x, x, key_padding_mask=~mask, attn_mask=far, need_weights=False)
    ref = res.norm(x + ref)
    assert torch.allclose(res(x, mask)[mask], ref[mask], atol=1e-5)
    # a sentence that fits the window is attended to whole
    short = torch.randn(1, 6, 16)
    full, _ = res.attn(short, short, short, need_weights=False)
    assert torch.allclose(res(short, torch.ones(1, 6, dtype=torch.bool)), res.norm(short + full), atol=1e-6)


def test_heads_must_divide_the_state_size():
    with pytest.raises(ConfigError, match="attention_heads"):
        ModelConfig(hidden_size=5, attention=True, attention_heads=4)


@pytest.fixture(scope="module")
def attention_run(tiny_corpus, tmp_path_factory):
    from nertool.data.conll import load_corpus
    from nertool.training.loop import train

    out = tmp_path_factory.mktemp("attn") / "run"
    base = Config()
    cfg = Config(model=base.model.replace(hidden_size=16, char_hidden=8, attention=True),
                 train=base.train.replace(epochs=6, batch_size=8, lr=0.01, patience=0, threads=1))
    result = train(load_corpus(tiny_corpus["train"], tiny_corpus["dev"]), cfg, out)
    return out, result


def test_tiny_training_with_attention_improves(attention_run):
    _, result = attention_run
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.best_dev_f1 > 0.3


def test_attention_model_saves_loads_and_exports_alike(attention_run, tiny_corpus, tmp_path):
    from nertool.data.conll import read_conll
    from nertool.store.export import export
    from nertool.store.loading import load
    from nertool.training.evaluate import predict

    run, _ = attention_run
    bundle = load(str(run))
    assert bundle.model.config.attention and isinstance(bundle.model.emitter.attention, StateAttention)
    sents = [t for t, _ in read_conll(tiny_corpus["test"])]
    scripted = torch.jit.load(str(export(bundle, tmp_path / "t.pt")))
    assert scripted.tag(sents) == predict(load(str(tmp_path / "t.pt")), sents) == predict(bundle, sents)
