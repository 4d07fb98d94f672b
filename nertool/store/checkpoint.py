"""A model is a self-describing directory::

    config.json       format, nertool version, model config, labels, schemes, sizes, corpus, scores
    words.json        word vocabulary with its normaliser (a ``tokenizers`` tokenizer file)
    chars.json        character vocabulary
    model.safetensors weights (never pickled)

Loading needs nothing else. A model saved with ``pack=True`` stores the pretrained vectors of the
words never seen in training (rows ``n_tuned`` onwards of ``emitter.pretrained``) as 4-bit codes,
one 16-level codebook per dimension: ``emitter.pretrained`` then holds only the first ``n_tuned``
rows, next to ``emitter.pretrained.codes`` and ``emitter.pretrained.levels``.

A model saved with ``refer=True`` stores only the first rows of ``emitter.pretrained`` (those that
training or compaction changed, and the training words without a pretrained vector); every later
row is read at load time from the installed vector package that config.json's
``pretrained_reference`` names, at the row that ``emitter.pretrained.source_rows`` gives, and is
checked against the sha256 recorded there. The file then holds what training changed and nothing
that the package already has.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from nertool import __version__
from nertool.config import SCHEMES, ModelConfig
from nertool.errors import ConfigError, ModelError
from nertool.fileio import atomic_write_bytes, atomic_write_text, interrupts_deferred
from nertool.model.network import PRETRAINED, BiLstmCrf
from nertool.model.vocab import CharVocab, Normalization, WordVocab
from nertool.store import rundir
from nertool.store.bundle import (
    FORMAT,
    FORMAT_VERSION,
    STRUCTURAL,
    ModelBundle,
    structure,
)
from nertool.store.card import model_card

PACKED = (f"{PRETRAINED}.codes", f"{PRETRAINED}.levels")
SOURCE_ROWS = f"{PRETRAINED}.source_rows"

MODEL_SCHEMES = tuple(s for s in SCHEMES if s != "auto")  # a saved model's scheme is a concrete one


def _precision(table: torch.Tensor, precision: str) -> torch.Tensor:
    return table.half().float() if precision == "float16" else table


def _reference_rows(bundle: ModelBundle) -> tuple[int, torch.Tensor, str]:
    """``(n_stored, source_rows, sha256)``: the rows of the pretrained table from ``n_stored`` on
    are exactly the vector package's rows ``source_rows`` (after the model's pretrained precision);
    ``sha256`` is the fingerprint of those source rows."""
    from nertool.model.embeddings import fingerprint, load_vectors, pretrained_rows

    m = bundle.model
    spec = m.config.embeddings
    pre_words, pre_vecs = load_vectors(spec)
    if pre_vecs.shape[1] != m.pretrained_dim:
        raise ModelError(f"{spec}: {pre_vecs.shape[1]}-dimensional vectors, the model has {m.pretrained_dim}")
    rows = torch.from_numpy(pretrained_rows(bundle.words, pre_words))
    table = m.emitter.pretrained.detach().cpu().float()
    same = rows >= 0
    source = _precision(torch.from_numpy(pre_vecs[rows.clamp(min=0).numpy()]), m.config.pretrained_precision)
    same &= (source == table).all(1)
    differs = (~same).nonzero()
    n_stored = int(differs[-1]) + 1 if len(differs) else 0
    kept = rows[n_stored:].numpy()
    return n_stored, rows[n_stored:].to(torch.int32), fingerprint(pre_vecs[kept])


def pack4(x: torch.Tensor, iterations: int = 25) -> tuple[torch.Tensor, torch.Tensor]:
    """4-bit codes of ``x`` (rows, dim), one 16-level codebook per column (1-D k-means started at
    quantiles). Returns ``codes`` (rows, ceil(dim / 2)) uint8, two codes a byte, and ``levels``
    (dim, 16) float32, sorted."""
    x = x.detach().float().cpu()
    rows, dim = x.shape
    q = (torch.arange(16, dtype=torch.float64) + 0.5) / 16
    levels = torch.empty(dim, 16)
    codes = torch.empty(rows, dim + dim % 2, dtype=torch.uint8)
    codes[:, dim:] = 0
    for j in range(dim):
        col = x[:, j].double()
        c = torch.quantile(col, q) if rows else torch.zeros(16, dtype=torch.float64)
        for _ in range(iterations if rows else 0):
            a = torch.bucketize(col, (c[1:] + c[:-1]) / 2)
            n = torch.bincount(a, minlength=16)
            sums = torch.bincount(a, col, minlength=16)
            c = torch.where(n > 0, sums / n.clamp(min=1), c).sort().values
        levels[j] = c.float()
        codes[:, j] = torch.bucketize(col, (c[1:] + c[:-1]) / 2).to(torch.uint8)
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).contiguous(), levels


def unpack4(codes: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """The (rows, dim) float32 matrix that :func:`pack4` codes stand for."""
    dim = levels.shape[0]
    c = torch.stack((codes & 15, codes >> 4), dim=2).reshape(codes.shape[0], 2 * codes.shape[1])[:, :dim].long()  # (rows, dim)
    return levels.float().gather(1, c.t()).t().contiguous()


def _exact_in_half(t: torch.Tensor) -> bool:
    return t.dtype == torch.float32 and bool(torch.equal(t.half().float(), t))


def save_model(directory: str | Path, bundle: ModelBundle, half: bool = False, pack: bool = False,
               refer: bool = False) -> None:
    """Write the bundle; each file is replaced atomically. ``half`` stores floating-point weights
    as float16 (loading casts them back to float32); ``pack`` stores the pretrained vectors of
    words never seen in training as 4-bit codes; ``refer`` stores none of the rows that the
    model's vector package holds unchanged (see the module docstring)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    m = bundle.model
    if (pack or refer) and not m.emitter.has_pretrained:
        raise ModelError("only models with pretrained embeddings can be packed or refer to their vectors")
    if pack and refer:
        raise ModelError("a model either packs its pretrained vectors or refers to them, not both")
    state = {k: v.detach().contiguous().cpu() for k, v in m.state_dict().items()}
    reference = None
    if refer:
        from nertool.model.embeddings import GLOVE_PACKAGE

        if m.config.embeddings != GLOVE_PACKAGE:
            raise ModelError(f"only models trained with {GLOVE_PACKAGE} can refer to their vectors "
                             f"(this one has {m.config.embeddings!r})")
        n_stored, source_rows, sha = _reference_rows(bundle)
        state[PRETRAINED] = state[PRETRAINED][:n_stored].contiguous()
        state[SOURCE_ROWS] = source_rows.contiguous()
        reference = {"vectors": m.config.embeddings, "stored_rows": n_stored, "sha256": sha,
                     "precision": m.config.pretrained_precision}
    if pack:  # codebooks fitted to the full-precision vectors, before any float16 rounding
        table = state[PRETRAINED]
        state[PACKED[0]], state[PACKED[1]] = pack4(table[m.n_tuned:])
        state[PRETRAINED] = table[: m.n_tuned].contiguous()
    if half:
        state = {k: v.half() if v.is_floating_point() and k not in PACKED else v for k, v in state.items()}
    elif PRETRAINED in state and _exact_in_half(state[PRETRAINED]):  # vectors rounded to float16 before training: stored at no loss
        state[PRETRAINED] = state[PRETRAINED].half()
    config = {
        **{k: v for k, v in bundle.meta.items() if k not in STRUCTURAL},
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **structure(bundle),
        **({"pretrained_reference": reference} if reference else {}),
    }
    with interrupts_deferred():  # the files of one model are replaced together
        atomic_write_bytes(d / rundir.WEIGHTS, st_save(state))
        bundle.words.save(d / rundir.WORDS)
        bundle.chars.save(d / rundir.CHARS)
        atomic_write_text(d / rundir.CONFIG, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        atomic_write_text(d / rundir.CARD, model_card(config, f"nertool model {d.name}"))


def read_config(directory: str | Path) -> dict[str, Any]:
    d = Path(directory)
    path = d / rundir.CONFIG
    if not d.is_dir():
        raise ModelError(f"{d}: not a model directory")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: missing; {d} is not a complete nertool model") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: corrupt JSON: {e}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelError(f"{path}: not a nertool model config")
    check_format_version(path, config.get("format_version"), FORMAT_VERSION)
    return config


def check_format_version(path: str | Path, found: Any, supported: int) -> None:
    """ModelError unless ``found`` is a format version this nertool reads (1 .. ``supported``)."""
    if not isinstance(found, int) or isinstance(found, bool) or found < 1:
        raise ModelError(f"{path}: format_version {found!r} is not a version number")
    if found > supported:
        raise ModelError(f"{path}: format_version {found} is newer than this nertool reads ({supported}); "
                         f"upgrade nertool (this is {__version__})")


def check_export_metadata(path: str | Path, meta: Any, fmt: str, supported: int, kind: str) -> dict:
    """``meta`` (an exported file's metadata), or a ModelError unless it is a dict of format
    ``fmt`` in a version this nertool reads."""
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise ModelError(f"{path}: not a nertool {kind} file")
    check_format_version(path, meta.get("format_version"), supported)
    return meta


def load_model(directory: str | Path) -> ModelBundle:
    """Load a model directory written by :func:`save_model`."""
    d = Path(directory)
    c = read_config(d)
    try:
        mconf = ModelConfig.from_dict(c["model"], f"{d / rundir.CONFIG} [model]")
        members = c.get("members", 1)
        if not isinstance(members, int) or isinstance(members, bool) or not 1 <= members <= 64:
            raise ValueError(f"members must be an integer from 1 to 64, got {members!r}")
        for key in ("scheme", "internal_scheme"):
            if c.get(key) not in MODEL_SCHEMES:
                raise ValueError(f"{key} must be {', '.join(MODEL_SCHEMES[:-1])} or {MODEL_SCHEMES[-1]}, got {c.get(key)!r}")
        model = BiLstmCrf(
            mconf, c["n_words"], c["n_tuned"], c["n_chars"], c["labels"], c["internal_scheme"], c["pretrained_dim"], members
        )
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        raise ModelError(f"{d / rundir.CONFIG}: invalid model config: {e}") from None
    weights = d / rundir.WEIGHTS
    try:
        state = st_load(weights.read_bytes())
    except FileNotFoundError:
        raise ModelError(f"{weights}: missing") from None
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise ModelError(f"{weights}: not a valid safetensors file ({e})") from None
    if "pretrained_reference" in c:
        state[PRETRAINED] = _referred_table(d, c["pretrained_reference"], state, c["pretrained_dim"])
    if all(k in state for k in PACKED):
        try:
            extra = unpack4(state.pop(PACKED[0]), state.pop(PACKED[1]))
            state[PRETRAINED] = torch.cat((state[PRETRAINED].float(), extra))
        except (KeyError, RuntimeError, IndexError) as e:
            raise ModelError(f"{weights}: packed pretrained vectors are malformed ({e})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ModelError(f"{weights}: weights do not match config.json: {str(e).splitlines()[0]}") from None
    model.eval()
    words = WordVocab.load(rundir.words_file(d, c), legacy=(c["n_tuned"], Normalization.from_config(mconf)))
    chars = CharVocab.load(d / rundir.CHARS)
    if len(words) != c["n_words"] or words.n_tuned != c["n_tuned"] or len(chars) != c["n_chars"]:
        raise ModelError(f"{d}: vocabulary sizes do not match config.json")
    meta = {k: v for k, v in c.items() if k not in STRUCTURAL}
    return ModelBundle(model, words, chars, c["scheme"], c["internal_scheme"], meta)


def _referred_table(d: Path, ref: Any, state: dict[str, torch.Tensor], dim: int) -> torch.Tensor:
    """The whole pretrained table of a model saved with ``refer=True``: its stored rows, then the
    rows it refers to, read from the installed vector package and checked against their sha256."""
    from nertool.errors import NertoolError
    from nertool.model.embeddings import fingerprint, reference_matrix

    where = d / rundir.CONFIG
    try:
        spec, sha, precision = ref["vectors"], ref["sha256"], ref["precision"]
        rows = state.pop(SOURCE_ROWS).long()
        stored = state[PRETRAINED].float()
    except (KeyError, TypeError) as e:
        raise ModelError(f"{where}: malformed pretrained_reference ({e})") from None
    try:
        matrix = reference_matrix(spec)
    except NertoolError as e:
        raise ModelError(f"{d}: this model reads its pretrained vectors from an installed package: {e}") from None
    if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= matrix.shape[0]) or matrix.shape[1] != dim:
        raise ModelError(f"{d}: the installed {spec} ({matrix.shape[0]} x {matrix.shape[1]}) is not the one the model refers to")
    n = stored.shape[0]
    table = torch.empty(n + rows.numel(), dim)
    table[:n] = stored
    source = table[n:].numpy()  # a view: the package's rows are read into the table itself
    for start in range(0, rows.numel(), 1 << 16):  # a block at a time: no second copy of the rows
        source[start:start + (1 << 16)] = matrix[rows[start:start + (1 << 16)].numpy()]
    del matrix
    if fingerprint(source) != sha:
        raise ModelError(f"{d}: the installed {spec} differs from the vectors the model was trained with (sha256 mismatch)")
    table[n:] = _precision(table[n:], precision)
    return table


def compact_model(source: str | Path, out: str | Path, keep_words: int | None = None, pack: bool = True,
                  refer: bool = False) -> ModelBundle:
    """Write a smaller copy of the model directory ``source`` to ``out``: trained corrections
    folded in (:func:`compact`), ``keep_words`` of the words known only to the pretrained vectors
    (the most frequent; all when None), float16 weights, and with ``pack`` those words' vectors
    as 4-bit codes, or with ``refer`` (every word kept) none of them, read from the installed
    vector package at load time. Returns the compacted bundle as loaded back from ``out``."""
    bundle = load_model(source)
    if bundle.model.members > 1:
        raise ModelError(f"{source}: an ensemble; compact its members, then combine them (nertool ensemble --refer "
                         f"keeps only what training changed)")
    if not bundle.model.emitter.has_pretrained:
        raise ModelError(f"{source}: has no pretrained embeddings, so there is nothing to compact")
    if refer and keep_words is not None:
        raise ModelError("a model that refers to its vectors keeps every word: give --refer or --keep-words, not both")
    extra = len(bundle.words) - bundle.model.n_tuned
    small = compact(bundle, extra if keep_words is None else min(keep_words, extra))
    small.meta["compacted"] = {"from": str(source), "extra_words": len(small.words) - bundle.model.n_tuned,
                               "packed": pack and not refer, "referred": refer}
    save_model(out, small, half=True, pack=pack and not refer, refer=refer)
    return load_model(out)


def compact(bundle: ModelBundle, keep_extra: int) -> ModelBundle:
    """A smaller model that tags identically for the words it keeps: each training word's trained
    correction is folded into its pretrained row, and of the words known only to the pretrained
    vectors, the ``keep_extra`` most frequent are kept (the others become unknown words)."""
    m = bundle.model
    e = m.emitter
    if not e.has_pretrained:
        raise ModelError("only models with pretrained embeddings can be compacted")
    limit = min(len(bundle.words), e.n_tuned + keep_extra)
    labels = m.labels
    small = BiLstmCrf(m.config, limit, 2, len(bundle.chars), labels, bundle.internal_scheme, m.pretrained_dim)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    table = state[PRETRAINED][:limit].clone()
    table[: e.n_tuned] += state["emitter.tuned.weight"]
    state[PRETRAINED] = table
    state["emitter.tuned.weight"] = torch.zeros(2, table.shape[1])
    small.load_state_dict(state)
    small.eval()
    return ModelBundle(small, bundle.words.truncated(limit, 2), bundle.chars, bundle.scheme, bundle.internal_scheme, dict(bundle.meta))


def restore_pretrained(bundle: ModelBundle, trained_rows: int, precision: str) -> ModelBundle:
    """The model ``bundle`` was before its pretrained-only vectors were packed or dropped: its first
    ``trained_rows`` vocabulary rows as they are, then every word of its vector package not among
    them, each with the package's own vector (rounded to ``precision``, the one it trained with)."""
    from dataclasses import replace

    from nertool.model.embeddings import load_vectors, pretrained_rows

    m, words = bundle.model, bundle.words
    if not m.emitter.has_pretrained:
        raise ModelError("only models with pretrained embeddings have pretrained rows to restore")
    if m.members > 1:
        raise ModelError("an ensemble's pretrained rows cannot be restored; restore its members")
    if not m.n_tuned <= trained_rows <= len(words):
        raise ModelError(f"trained_rows {trained_rows} must lie between n_tuned ({m.n_tuned}) and the vocabulary size ({len(words)})")
    pre_words, pre_vecs = load_vectors(m.config.embeddings)
    vocab = words.truncated(trained_rows, m.n_tuned).extended(pre_words)
    extra = pretrained_rows(vocab, pre_words)[trained_rows:]  # every appended word has its row
    table = torch.cat((m.emitter.pretrained.detach()[:trained_rows].float(),
                       _precision(torch.from_numpy(pre_vecs[extra]), precision)))
    config = replace(m.config, pretrained_precision=precision)
    big = BiLstmCrf(config, len(vocab), m.n_tuned, len(bundle.chars), m.labels, bundle.internal_scheme, m.pretrained_dim)
    big.load_state_dict({**m.state_dict(), PRETRAINED: table})
    big.eval()
    return ModelBundle(big, vocab, bundle.chars, bundle.scheme, bundle.internal_scheme, dict(bundle.meta))
