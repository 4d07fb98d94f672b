import pytest
import torch

from nertool.config import ModelConfig
from nertool.errors import ConfigError
from nertool.model.network import Emitter, SequenceDropout


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


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_unpacked_birnn_gives_the_states_of_a_packed_run(kind, layers, bias):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from nertool.model.network import unpacked_birnn

    torch.manual_seed(layers)
    rnn = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(6, 5, num_layers=layers, bias=bias, batch_first=True,
                                                             bidirectional=True).eval()
    lengths = torch.tensor([7, 1, 4, 7, 2])
    x = torch.randn(5, 7, 6)
    mask = torch.arange(7).unsqueeze(0) < lengths.unsqueeze(1)
    packed, _ = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    ref, _ = pad_packed_sequence(packed, batch_first=True, total_length=7)
    out = unpacked_birnn(x, lengths, rnn._flat_weights, kind == "lstm", layers, 5, bias)
    assert out.shape == ref.shape
    assert torch.allclose(out[mask], ref[mask], atol=1e-6)
    # a sentence's states do not depend on the padding after it
    x2 = x.clone()
    x2[~mask] = 100.0
    assert torch.allclose(unpacked_birnn(x2, lengths, rnn._flat_weights, kind == "lstm", layers, 5, bias)[mask], ref[mask], atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_eval_emissions_of_padded_batches_equal_training_mode_packing_and_script(kind):
    cfg = ModelConfig(rnn=kind, hidden_size=8, num_layers=2, dropout=0.0, char_hidden=6)
    e = Emitter(cfg, n_words=10, n_tuned=10, n_chars=5, n_labels=3)
    torch.manual_seed(0)
    words = torch.randint(1, 10, (3, 6))
    mask = torch.tensor([[1] * 6, [1] * 2 + [0] * 4, [1] * 5 + [0]], dtype=torch.bool)
    words[~mask] = 0
    chars = torch.randint(1, 5, (4, 3))
    char_index = torch.randint(1, 4, (3, 6)) * mask
    feats = e.word_features(chars)
    packed = e.train().from_features(words, feats, char_index, mask)  # dropout 0: packing, no randomness
    fast = e.eval().from_features(words, feats, char_index, mask)
    assert torch.allclose(fast[mask], packed[mask], atol=1e-5)
    scripted = torch.jit.script(e).from_features(words, feats, char_index, mask)
    assert torch.allclose(scripted[mask], packed[mask], atol=1e-5)
