"""The Bi-LSTM-CRF network: word + character features -> Bi-LSTM -> emissions -> CRF.

No I/O and no device handling here: the caller moves the module and its inputs. ``Emitter``
(everything up to the emissions) is TorchScript-able; the CRF likelihood is pytorch-crf's.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import List

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torchcrf import CRF

from nertool.config import ModelConfig
from nertool.model.decoding import constraint_bias
from nertool.model.vocab import PAD_ID

PRETRAINED = "emitter.pretrained"  # the frozen pretrained table: a buffer, never trained


def unpacked_birnn(x: torch.Tensor, lengths: torch.Tensor, weights: List[torch.Tensor], is_lstm: bool,
                   num_layers: int, hidden: int, bias: bool) -> torch.Tensor:
    """A bidirectional LSTM or GRU (``weights`` as ``nn.LSTM._flat_weights``; no dropout) over
    padded sentences without packing: (batch, seq_len, input_dim), lengths (batch,) ->
    (batch, seq_len, 2 * hidden). The states at real positions are those of a packed run; those
    past a sentence's end are not meaningful. Each direction runs unpacked over the whole padded
    batch, the backward one over each sentence reversed within its own length: on CPU up to about
    twice as fast as packing at small hidden sizes (1.2-1.9x at 80 units, little at 200)."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # shape: (1, seq_len)
    back = lengths.unsqueeze(1) - 1 - steps
    order = torch.where(back >= 0, back, steps).unsqueeze(2)  # shape: (batch, seq_len, 1), its own inverse
    h0 = x.new_zeros(1, x.shape[0], hidden)
    per = 4 if bias else 2
    out = x
    for layer in range(num_layers):
        k = 2 * per * layer
        reverse = out.gather(1, order.expand(-1, -1, out.shape[2]))
        if is_lstm:
            fwd = torch.lstm(out, [h0, h0], weights[k : k + per], bias, 1, 0.0, False, False, True)[0]
            bwd = torch.lstm(reverse, [h0, h0], weights[k + per : k + 2 * per], bias, 1, 0.0, False, False, True)[0]
        else:
            fwd = torch.gru(out, h0, weights[k : k + per], bias, 1, 0.0, False, False, True)[0]
            bwd = torch.gru(reverse, h0, weights[k + per : k + 2 * per], bias, 1, 0.0, False, False, True)[0]
        out = torch.cat([fwd, bwd.gather(1, order.expand(-1, -1, hidden))], dim=2)  # shape: (batch, seq_len, 2 * hidden)
    return out


class CharCNN(nn.Module):
    """Max-pooled convolution over each word's characters."""

    def __init__(self, n_chars: int, dim: int, filters: int, kernel: int):
        super().__init__()
        self.embed = nn.Embedding(n_chars, dim, padding_idx=0)
        self.conv = nn.Conv1d(dim, filters, kernel, padding=kernel // 2)
        self.out_dim = filters

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        # chars: (words, max_chars) -> (words, filters)
        c = chars.shape[1]
        x = self.embed(chars).transpose(1, 2)  # shape: (words, dim, max_chars)
        x = self.conv(x)[:, :, :c]  # shape: (words, filters, max_chars)
        x = x.masked_fill((chars == 0).unsqueeze(1), -1e4)
        x = x.max(2).values  # shape: (words, filters)
        return x.masked_fill(chars[:, :1] == 0, 0.0)  # the empty (padding) word


class CharLSTM(nn.Module):
    """Final states of a bidirectional LSTM over each word's characters."""

    def __init__(self, n_chars: int, dim: int, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(n_chars, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, hidden // 2, batch_first=True, bidirectional=True)
        self.out_dim = 2 * (hidden // 2)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        # chars: (words, max_chars) -> (words, hidden)
        lengths = (chars != 0).sum(1)  # shape: (words,)
        # the empty word gets length 1 (a padding character) and a zero vector afterwards
        packed = pack_padded_sequence(self.embed(chars), lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)  # h: (2, words, hidden/2)
        out = torch.cat([h[0], h[1]], dim=1)
        return out.masked_fill((lengths == 0).unsqueeze(1), 0.0)


class NoChars(nn.Module):
    out_dim = 0

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        return torch.zeros(chars.shape[0], 0, device=chars.device)


class CaseFeatures(nn.Module):
    """Word shape from the character ids: first letter upper case, all upper, all lower, mixed,
    some digit, all digits, no letter or digit. ``kinds`` (n_chars,) holds 1 for upper-case,
    2 for lower-case, 3 for digit characters (0 otherwise)."""

    out_dim = 7

    def __init__(self, kinds: torch.Tensor):
        super().__init__()
        self.register_buffer("kinds", kinds)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        # chars: (words, max_chars) -> (words, 7)
        k = self.kinds[chars]  # shape: (words, max_chars)
        n = (chars != 0).sum(1)
        up, low, dig = (k == 1).sum(1), (k == 2).sum(1), (k == 3).sum(1)
        feats = torch.stack(
            [k[:, 0] == 1, (up == n) & (n > 0), (low == n) & (n > 0), (up > 0) & (low > 0), dig > 0, (dig == n) & (n > 0),
             (up + low + dig == 0) & (n > 0)],
            dim=1,
        )
        return feats.to(torch.float32)


class NoCase(nn.Module):
    out_dim = 0

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        return torch.zeros(chars.shape[0], 0, device=chars.device)


class SequenceDropout(nn.Module):
    """Dropout whose mask is drawn once per sequence and feature and shared by all positions
    (variational or "locked" dropout): (batch, seq_len, dim) -> same shape."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty(x.shape[0], 1, x.shape[2], device=x.device, dtype=x.dtype).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class StateAttention(nn.Module):
    """Masked multi-head self-attention over the recurrent states, combined with them:
    (batch, seq_len, dim) and a bool mask (batch, seq_len) -> (batch, seq_len, out_dim).

    A token attends to the real tokens at most ``window`` positions away; padding is never
    attended to. A sentence of up to ``window + 1`` tokens is therefore attended to whole, and a
    longer one in blocks of ``window`` queries against the keys they can see, so memory grows
    linearly with its length."""

    def __init__(self, dim: int, heads: int, dropout: float, combine: str, window: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.concat = combine == "concat"
        self.norm = nn.LayerNorm(dim) if not self.concat else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.window = int(window)
        self.out_dim = 2 * dim if self.concat else dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        pad = ~mask  # shape: (batch, seq_len), True where nothing may attend
        if n <= self.window + 1:
            a, _ = self.attn(x, x, x, key_padding_mask=pad, need_weights=False)
        else:
            parts: list[torch.Tensor] = []
            for s in range(0, n, self.window):
                e = min(n, s + self.window)
                k0, k1 = max(0, s - self.window), min(n, e + self.window)
                q_pos = torch.arange(s, e, device=x.device).unsqueeze(1)
                k_pos = torch.arange(k0, k1, device=x.device).unsqueeze(0)
                far = (q_pos - k_pos).abs() > self.window  # shape: (block, keys)
                kv = x[:, k0:k1]
                a_s, _ = self.attn(x[:, s:e], kv, kv, key_padding_mask=pad[:, k0:k1], attn_mask=far, need_weights=False)
                parts.append(a_s)
            a = torch.cat(parts, dim=1)
        a = a.masked_fill(pad.unsqueeze(2), 0.0)  # padding queries: zeros, not whatever softmax gave
        if self.concat:
            return torch.cat([x, self.drop(a)], dim=2)
        return self.norm(x + self.drop(a))


class NoAttention(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x


class Emitter(nn.Module):
    """Word ids (batch, seq_len), the batch's distinct words' char ids (words, max_chars) with row
    0 empty, ``char_index`` (batch, seq_len) into those rows, and a bool mask (batch, seq_len)
    -> tag scores (batch, seq_len, num_tags)."""

    def __init__(self, config: ModelConfig, n_words: int, n_tuned: int, n_chars: int, n_labels: int, pretrained_dim: int = 0,
                 shared_table: bool = False):
        super().__init__()
        self.case = CaseFeatures(torch.zeros(n_chars, dtype=torch.long)) if config.case_features else NoCase()
        dim = pretrained_dim or config.word_dim
        self.n_tuned = n_tuned
        self.word_dropout = float(config.word_dropout)
        self.tuned_dropout = float(config.tuned_dropout)
        # Frozen pretrained vectors for every word id (zeros for words they lack), plus a trainable
        # table for training words: a word seen in training is pretrained + tuned, a word known
        # only to the pretrained vectors keeps its pretrained vector.
        self.has_pretrained = pretrained_dim > 0
        # shared_table: a member of an EmitterEnsemble, whose one table it is given (not saved here)
        rows = 1 if shared_table or not pretrained_dim else n_words
        self.register_buffer("pretrained", torch.zeros(rows, dim), persistent=not shared_table)
        self.tuned = nn.Embedding(n_tuned, dim, padding_idx=PAD_ID)
        if config.char_encoder == "cnn":
            self.chars = CharCNN(n_chars, config.char_dim, config.char_hidden, config.char_kernel)
        elif config.char_encoder == "lstm":
            self.chars = CharLSTM(n_chars, config.char_dim, config.char_hidden)
        else:
            self.chars = NoChars()
        rnn_cls = nn.LSTM if config.rnn == "lstm" else nn.GRU
        self.is_lstm: bool = config.rnn == "lstm"
        self.rnn = rnn_cls(
            dim + self.chars.out_dim + self.case.out_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=True,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.dropout = SequenceDropout(config.dropout) if config.dropout_mask == "sequence" else nn.Dropout(config.dropout)
        states = 2 * config.hidden_size
        if config.attention:
            self.attention = StateAttention(states, config.attention_heads, config.attention_dropout,
                                            config.attention_combine, config.attention_window)
        else:
            self.attention = NoAttention(states)
        self.emit = nn.Linear(self.attention.out_dim, n_labels)
        self.feature_dim: int = self.chars.out_dim + self.case.out_dim  # columns of word_features

    def embed_words(self, words: torch.Tensor) -> torch.Tensor:
        # words: (batch, seq_len) -> (batch, seq_len, dim)
        if self.training and self.word_dropout > 0:
            drop = torch.rand(words.shape, device=words.device) < self.word_dropout
            words = torch.where(drop & (words != 0), torch.full_like(words, 1), words)  # -> [UNK]
        tuned_ids = torch.where(words < self.n_tuned, words, torch.zeros_like(words))  # [PAD] row is 0
        x = self.tuned(tuned_ids)
        if self.has_pretrained:
            pre = self.pretrained[words].to(x.dtype)  # the table may be kept in float16 (exported files)
            if self.training and self.tuned_dropout > 0:
                # teach the network to read plain pretrained vectors, as it must for words never
                # seen in training: drop the trained correction of words that have a vector
                drop = (torch.rand(words.shape, device=words.device) < self.tuned_dropout) & (pre.abs().sum(2) > 0)
                x = x.masked_fill(drop.unsqueeze(2), 0.0)
            x = x + pre
        return x

    def forward(self, words: torch.Tensor, chars: torch.Tensor, char_index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.from_features(words, self.word_features(chars), char_index, mask)

    @torch.jit.export
    def word_features(self, chars: torch.Tensor) -> torch.Tensor:
        """Character features of words: (words, max_chars) -> (words, char_dim + case_dim); the
        empty word (all padding) gets zeros."""
        return torch.cat([self.chars(chars), self.case(chars)], dim=1)

    @torch.jit.export
    def from_features(self, words: torch.Tensor, per_word: torch.Tensor, char_index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Emissions from word ids and precomputed :meth:`word_features` rows (``char_index``
        points each token at its row)."""
        # an embedding lookup, not per_word[char_index]: its backward sums a row's gradients in a fixed
        # order, where indexing's accumulates them in thread order (weights would vary run to run)
        x = torch.cat([self.embed_words(words), F.embedding(char_index, per_word)], dim=2)
        x = self.dropout(x)  # shape: (batch, seq_len, input_dim)
        lengths = mask.sum(1)
        if bool((lengths == words.shape[1]).all()):  # no padding: no packing needed
            out, _ = self.rnn(x)
        elif not self.training and not x.is_cuda:  # the states of packing, faster on CPU; training and cuDNN pack
            out = unpacked_birnn(x, lengths, self.rnn._flat_weights, self.is_lstm, self.rnn.num_layers,
                                 self.rnn.hidden_size, self.rnn.bias)
            out = out * mask.unsqueeze(2).to(out.dtype)  # zeros past each sentence's end, as packing gives
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out_packed, _ = self.rnn(packed)
            out, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=words.shape[1])
        out = self.attention(out, mask)  # shape: (batch, seq_len, attention.out_dim)
        return self.emit(self.dropout(out))  # shape: (batch, seq_len, num_tags)


class EmitterEnsemble(nn.Module):
    """``members`` :class:`Emitter` networks over one vocabulary and one frozen pretrained table:
    the same inputs as an Emitter -> the mean of the members' tag scores (batch, seq_len, num_tags).
    Its word features are the members' side by side (words, members * member feature_dim)."""

    def __init__(self, config: ModelConfig, n_words: int, n_tuned: int, n_chars: int, n_labels: int,
                 pretrained_dim: int, members: int):
        super().__init__()
        dim = pretrained_dim or config.word_dim
        self.n_tuned = n_tuned
        self.has_pretrained = pretrained_dim > 0
        self.register_buffer("pretrained", torch.zeros(n_words if pretrained_dim else 1, dim))
        self.members = nn.ModuleList(
            Emitter(config, n_words, n_tuned, n_chars, n_labels, pretrained_dim, shared_table=True) for _ in range(members)
        )
        self.feature_dim: int = sum(m.feature_dim for m in self.members)
        self._tie()

    def _tie(self) -> None:
        for m in self.members:
            m.pretrained = self.pretrained

    def _apply(self, *args, **kwargs):  # .to(device) copies each buffer: point the members at the one copy again
        out = super()._apply(*args, **kwargs)
        self._tie()
        return out

    def forward(self, words: torch.Tensor, chars: torch.Tensor, char_index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.from_features(words, self.word_features(chars), char_index, mask)

    @torch.jit.export
    def word_features(self, chars: torch.Tensor) -> torch.Tensor:
        """(words, max_chars) -> (words, feature_dim): each member's features, side by side."""
        parts: List[torch.Tensor] = []
        for m in self.members:
            parts.append(m.word_features(chars))
        return torch.cat(parts, dim=1)

    @torch.jit.export
    def from_features(self, words: torch.Tensor, per_word: torch.Tensor, char_index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The members' mean emissions, each from its own columns of ``per_word``."""
        scores: List[torch.Tensor] = []
        offset = 0
        for m in self.members:
            own = per_word[:, offset : offset + m.feature_dim].contiguous()  # shape: (words, member feature_dim)
            scores.append(m.from_features(words, own, char_index, mask))
            offset += m.feature_dim
        return torch.stack(scores).mean(0)  # shape: (batch, seq_len, num_tags)


class _AddBias(nn.Module):
    """Parametrisation: the stored parameter plus a fixed mask of forbidden transitions."""

    def __init__(self, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


def partial_nll(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """The negative log of the probability that a sentence's tags lie in ``allowed``: ``log Z`` of
    every sequence minus ``log Z`` of those with each token's tag allowed (the marginal likelihood
    of a partially tagged sentence; one allowed tag per token gives the usual CRF likelihood).
    emissions (batch, seq_len, num_tags), mask (batch, seq_len), allowed (batch, seq_len, num_tags)
    bool -> (batch,). Both normalisers are pytorch-crf's."""
    em = emissions.transpose(0, 1)  # shape: (seq_len, batch, num_tags), as pytorch-crf computes
    m = mask.transpose(0, 1)
    known = em.masked_fill(~allowed.transpose(0, 1), -1e9)  # far below any path, forbidden ones (-1e4) too
    return crf._compute_normalizer(em, m) - crf._compute_normalizer(known, m)


class BiLstmCrf(nn.Module):
    """Sequence labeller: an :class:`Emitter` and a pytorch-crf CRF, optionally constrained to
    the transitions the tag scheme allows (in training and in decoding)."""

    def __init__(
        self,
        config: ModelConfig,
        n_words: int,
        n_tuned: int,
        n_chars: int,
        labels: Sequence[str],
        scheme: str,
        pretrained_dim: int = 0,
        members: int = 1,
    ):
        super().__init__()
        self.config = config
        self.labels = list(labels)
        self.pretrained_dim = pretrained_dim
        self.members = members  # > 1: an ensemble (see nertool.training.ensemble), its CRF the members' mean
        if members == 1:
            self.emitter: Emitter | EmitterEnsemble = Emitter(config, n_words, n_tuned, n_chars, len(labels), pretrained_dim)
        else:
            self.emitter = EmitterEnsemble(config, n_words, n_tuned, n_chars, len(labels), pretrained_dim, members)
        self.crf = CRF(len(labels), batch_first=True)
        if config.constrain and scheme != "none":
            for name, bias in zip(("start_transitions", "end_transitions", "transitions"), constraint_bias(scheme, labels)):
                parametrize.register_parametrization(self.crf, name, _AddBias(bias))

    @property
    def n_tuned(self) -> int:
        return self.emitter.n_tuned

    def init_embeddings(self, pretrained: torch.Tensor | None, has_vector: torch.Tensor | None) -> None:
        """Copy pretrained vectors (n_words, dim) in; tuned rows start at 0 for words that have one."""
        e = self.emitter
        with torch.no_grad():
            if pretrained is not None:
                e.pretrained.copy_(pretrained)
                e.tuned.weight[has_vector[: e.n_tuned]] = 0.0
            e.tuned.weight[PAD_ID] = 0.0

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The state that training changes: everything but the frozen pretrained table."""
        return {k: v for k, v in self.state_dict().items() if k != PRETRAINED}

    def load_trained_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load a :meth:`trained_state`, keeping this model's pretrained table."""
        self.load_state_dict({**state, PRETRAINED: self.emitter.pretrained})

    def set_char_kinds(self, chars: Sequence[str]) -> None:
        """Tell the case features which character ids are upper, lower case or digits;
        ``chars[i]`` is the character of id ``i + 2`` (ids 0 and 1: padding, unknown)."""
        kinds = [0, 0] + [1 if c.isupper() else 2 if c.islower() else 3 if c.isdigit() else 0 for c in chars]
        for e in self.emitter.members if isinstance(self.emitter, EmitterEnsemble) else [self.emitter]:
            if isinstance(e.case, CaseFeatures):
                e.case.kinds.copy_(torch.tensor(kinds))

    def emissions(self, words, chars, char_index, mask) -> torch.Tensor:
        """Per-token tag scores, shape (batch, seq_len, num_tags)."""
        return self.emitter(words, chars, char_index, mask)

    def word_features(self, chars: torch.Tensor) -> torch.Tensor:
        """Per-word character features (see :meth:`Emitter.word_features`)."""
        return self.emitter.word_features(chars)

    def emissions_from_features(self, words, features, char_index, mask) -> torch.Tensor:
        """:meth:`emissions` with the character features of each ``char_index`` row given."""
        return self.emitter.from_features(words, features, char_index, mask)

    def loss(self, words, chars, char_index, mask, tags, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """Mean negative log-likelihood of the gold tags over the batch's sentences; with
        ``allowed`` (batch, seq_len, num_tags) bool, of every tag sequence it allows (partial labels)."""
        em = self.emitter(words, chars, char_index, mask)
        if allowed is not None:
            return partial_nll(self.crf, em, mask, allowed).mean()
        return -self.crf(em, tags, mask=mask, reduction="mean")

    def transition_scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(start, end, transitions)`` including the constraint masks."""
        return self.crf.start_transitions, self.crf.end_transitions, self.crf.transitions
