"""Export a model to one self-contained TorchScript file: vocabularies, normalisation, weights,
labels, constrained batched Viterbi and metadata. Loadable with plain ``torch.jit.load``; nertool
reads it back through :mod:`nertool.store.loading`. A sink: nothing in nertool depends on this module."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Dict, List, Tuple

import torch
from torch import nn

from nertool.data.tags import label_map
from nertool.errors import ModelError
from nertool.fileio import atomic_write_bytes
from nertool.model.decoding import viterbi
from nertool.model.network import BiLstmCrf
from nertool.store.checkpoint import ModelBundle, structure
from nertool.store.loading import EXPORT_FORMAT, EXPORT_FORMAT_VERSION


class ScriptTagger(nn.Module):
    """Token strings in, tag strings out (``tag``); or tensors in, tag ids out (``forward``)."""

    def __init__(self, bundle: ModelBundle):
        super().__init__()
        char_table, lower_table = bundle.words.char_tables()
        m = bundle.model
        self.emitter = m.emitter  # an Emitter, or an EmitterEnsemble
        start, end, trans = (t.detach().clone() for t in m.transition_scores())
        self.register_buffer("start", start)
        self.register_buffer("end", end)
        self.register_buffer("transitions", trans)
        # the tag each of the network's labels is written as (BIOES E-PER -> I-PER: repeats), and
        # the distinct tags that can come out, once each
        self.tag_of: List[str] = _output_labels(bundle)
        self.labels: List[str] = list(dict.fromkeys(self.tag_of))
        self.word_index: Dict[str, int] = dict(bundle.words.index())
        self.char_index: Dict[str, int] = dict(bundle.chars.index)
        self.char_table: Dict[str, str] = char_table  # per-character normalisation (lower-casing, digits)
        # a cased vocabulary looks a word up again lower-cased when its own spelling is unknown
        self.cased: bool = bundle.words.cased
        # (typed explicitly: TorchScript cannot infer the type of an empty dict)
        self.lower_table = torch.jit.Attribute(lower_table, Dict[str, str])
        self.max_chars: int = m.config.max_word_chars
        self.unk: int = 1
        self.metadata: str = json.dumps(_metadata(bundle))

    def forward(
        self, words: torch.Tensor, chars: torch.Tensor, char_index: torch.Tensor, mask: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Tensor entry point (see ``nertool.model.encoding.Batch``): returns Viterbi tag ids
        (batch, seq_len) and their path scores (batch,)."""
        em = self.emitter(words, chars, char_index, mask)
        return viterbi(em, mask, self.start, self.end, self.transitions)

    @torch.jit.export
    def code_points(self, word: str) -> List[str]:
        """The characters of ``word`` (TorchScript strings index UTF-8 bytes, so decode by hand)."""
        out: List[str] = []
        i = 0
        n = len(word)
        while i < n:
            lead = ord(word[i])
            k = 1
            if lead >= 0xF0:
                k = 4
            elif lead >= 0xE0:
                k = 3
            elif lead >= 0xC0:
                k = 2
            out.append(word[i : i + k])
            i += k
        return out

    @torch.jit.export
    def normalize(self, word: str) -> str:
        out: List[str] = []
        for c in self.code_points(word):
            out.append(self.char_table.get(c, c))
        return "".join(out)

    @torch.jit.export
    def word_id(self, word: str) -> int:
        """The vocabulary id of a token (``unk`` when unknown)."""
        form = self.normalize(word)
        i = self.word_index.get(form, self.unk)
        if i == self.unk and self.cased:
            low: List[str] = []
            for c in self.code_points(form):
                low.append(self.lower_table.get(c, c))
            i = self.word_index.get("".join(low), self.unk)
        return i

    @torch.jit.export
    def encode(self, sentences: List[List[str]]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token lists -> (words, chars, char_index, mask) tensors on the module's device."""
        b = len(sentences)
        t = 1
        for s in sentences:
            t = max(t, len(s))
        words = torch.zeros(b, t, dtype=torch.long)
        char_index = torch.zeros(b, t, dtype=torch.long)
        mask = torch.zeros(b, t, dtype=torch.bool)
        rows: Dict[str, int] = {}
        distinct: List[List[str]] = []
        for i, s in enumerate(sentences):
            for j, w in enumerate(s):
                if len(w) == 0 or w.isspace():  # no tokenizer gives one: a string passed for a token list
                    raise ValueError("sentence " + str(i) + ", token " + str(j) + " is empty or white space: "
                                     "tag() takes token lists such as [['EU', 'rejects']], not strings")
                words[i, j] = self.word_id(w)
                mask[i, j] = True
                r = rows.get(w)
                if r is None:
                    r = len(distinct) + 1
                    rows[w] = r
                    distinct.append(self.code_points(w)[: self.max_chars])
                char_index[i, j] = r
        width = 1
        for cs in distinct:
            width = max(width, len(cs))
        chars = torch.zeros(len(distinct) + 1, width, dtype=torch.long)
        for r, cs in enumerate(distinct):
            for k, c in enumerate(cs):
                chars[r + 1, k] = self.char_index.get(c, self.unk)
        dev = self.start.device
        return words.to(dev), chars.to(dev), char_index.to(dev), mask.to(dev)

    @torch.jit.export
    def tag(self, sentences: List[List[str]]) -> List[List[str]]:
        """Tags of each sentence, in the model's own tag scheme."""
        out: List[List[str]] = []
        if len(sentences) == 0:
            return out
        words, chars, char_index, mask = self.encode(sentences)
        tags, _ = self.forward(words, chars, char_index, mask)
        rows: List[List[int]] = tags.cpu().tolist()
        for i, s in enumerate(sentences):
            out.append([self.tag_of[k] for k in rows[i][: len(s)]])
        return out


def _output_labels(bundle: ModelBundle) -> List[str]:
    """Labels in the corpus's scheme (exact for every valid sequence of the internal scheme)."""
    labels = label_map(bundle.labels, bundle.internal_scheme, bundle.scheme)
    if labels is None:
        raise ModelError(f"export supports models reported in IOB2 or in their internal scheme, not {bundle.scheme}")
    return labels


def _metadata(bundle: ModelBundle) -> dict:
    return {
        **bundle.meta,
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        **structure(bundle),
        "output_labels": _output_labels(bundle),
    }


def _compact_pretrained(emitter: nn.Module, precision: str) -> None:
    """The frozen pretrained table in float16 when the model directory keeps it so (its values are
    float16 already: nothing changes but the file's size); looked up, it is float32 again."""
    if precision != "float16" or not getattr(emitter, "has_pretrained", False):
        return
    table = emitter.pretrained.half()
    emitter.pretrained = table
    for member in getattr(emitter, "members", []):  # an ensemble's networks share the table
        member.pretrained = table


def export(bundle: ModelBundle, out: str | Path) -> Path:
    """Write ``bundle`` (an eager model, as :func:`nertool.store.loading.load` gives for a directory)
    as one TorchScript file at ``out``."""
    if not isinstance(bundle.model, BiLstmCrf):
        raise ModelError("this model is an exported file already; export a model directory")
    tagger = ScriptTagger(bundle).eval()
    for p in tagger.parameters():
        p.requires_grad_(False)  # inference only: no autograd bookkeeping in the exported file
    _compact_pretrained(tagger.emitter, bundle.model.config.pretrained_precision)
    module = torch.jit.script(tagger)
    buf = io.BytesIO()
    torch.jit.save(module, buf, _extra_files={"nertool.json": module.metadata})
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)
