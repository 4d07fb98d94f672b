"""CoNLL column files and CoNLL-U -> ``datasets.DatasetDict`` with ``tokens`` and ``tags``.

No tensors here. Tags are a ``ClassLabel`` sequence; the corpus's tag scheme travels beside the
splits in a :class:`Corpus`.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nertool.config import SCHEMES, DataConfig
from nertool.data import tags as tagmod
from nertool.errors import BadLines, DataFormatError, NertoolError
from nertool.fileio import read_lines

if TYPE_CHECKING:
    import datasets

Sentence = tuple[list[str], list[str]]  # (tokens, tags)


@dataclass(frozen=True)
class Corpus:
    """Splits (``train``, ``dev``, ``test`` where present) and the tag scheme of their labels."""

    splits: "object"  # datasets.DatasetDict
    scheme: str  # IOB1 | IOB2 | BIOES | none
    labels: tuple[str, ...]

    def sentences(self, split: str) -> list[Sentence]:
        ds = self.splits[split]
        names = ds.features["tags"].feature.names
        return [(list(toks), [names[i] if i >= 0 else tagmod.UNKNOWN for i in ids]) for toks, ids in zip(ds["tokens"], ds["tags"])]


Row = tuple[int, list[str]]  # (line number, fields)


def split_fields(line: str) -> list[str]:
    """The columns of a line: tab-separated when it has a tab, else separated by runs of spaces."""
    if "\t" in line:
        return [f.strip(" ") for f in line.strip(" ").split("\t")]
    return line.split()


def parse_columns(
    lines: Iterable[tuple[int, str]], path: str | Path | None, bad: BadLines | None = None,
    docstart: Callable[[int, list[str]], None] | None = None,
) -> Iterator[list[Row]]:
    """Sentences of a CoNLL column stream, as rows of fields with their line numbers.

    Blank lines end sentences; ``-DOCSTART-`` lines end the current sentence and are skipped,
    ``docstart(line number, fields)`` being called for each once the sentence before it has been
    yielded (so a caller that counts the calls knows each sentence's document as it gets it).
    Every row must have as many columns as the first; a ragged row raises DataFormatError naming
    the line, or is counted and skipped when ``bad`` says so. The one CoNLL parser: training,
    evaluation and tagging all read columns through it.
    """
    bad = bad or BadLines()
    rows: list[Row] = []
    ncols = None
    for lineno, line in lines:
        if not line.strip():
            if rows:
                yield rows
                rows = []
            continue
        fields = split_fields(line)
        if fields[0] == "-DOCSTART-":
            if rows:
                yield rows
                rows = []
            if docstart is not None:
                docstart(lineno, fields)
            continue
        if ncols is None:
            ncols = len(fields)
        elif len(fields) != ncols:
            bad.handle(DataFormatError(path, lineno, f"expected {ncols} columns, found {len(fields)}"))
            continue
        rows.append((lineno, fields))
    if rows:
        yield rows


def check_column(path: str | Path | None, row: Row, column: int, name: str) -> None:
    """DataFormatError unless ``column`` exists in ``row`` (negative counts from the end)."""
    lineno, fields = row
    if not -len(fields) <= column < len(fields):
        raise DataFormatError(path, lineno, f"{name} column {column} out of range: line has {len(fields)} columns")


_PROSE_END = re.compile(r"[^\W\d_][.!?,;:][\"')\]]*$")  # a word with its sentence's punctuation attached


def read_conll(
    path: str | Path,
    token_column: int = 0,
    tag_column: int = -1,
    encoding: str = "utf-8",
    check_tags: bool = True,
) -> list[Sentence]:
    """Labelled sentences of a CoNLL column file (see :func:`parse_columns`).

    With ``check_tags`` every tag must be ``O`` or ``PREFIX-TYPE`` (a chunk scheme); turn it off
    for plain labels such as POS tags.
    """
    sentences: list[Sentence] = []
    for rows in parse_columns(enumerate(read_lines(path, encoding), 1), path):
        if not sentences:
            if len(rows[0][1]) < 2:
                raise DataFormatError(path, rows[0][0], "expected at least 2 columns (token and tag), found 1")
            check_column(path, rows[0], token_column, "token")
            check_column(path, rows[0], tag_column, "tag")
        toks, tgs = [], []
        for lineno, fields in rows:
            token, tag = fields[token_column], fields[tag_column]
            if not token or not tag:
                raise DataFormatError(path, lineno, "empty token or tag field")
            if check_tags and tag != "O" and tag != tagmod.UNKNOWN:  # ?: a tag not known (partial annotation)
                try:
                    tagmod.split_tag(tag)
                except tagmod.TagError as e:
                    if _PROSE_END.search(tag):  # "Paris." as a tag: a line of running text
                        raise DataFormatError(path, lineno, "this looks like raw text, not CoNLL columns: training needs "
                                                            "one token per line with its tag in the last column") from None
                    raise DataFormatError(path, lineno, f"{e}; use --scheme none for plain labels such as POS tags") from None
            toks.append(token)
            tgs.append(tag)
        sentences.append((toks, tgs))
    return sentences


def document_ids(path: str | Path, encoding: str = "utf-8") -> list[int]:
    """The document of each sentence of a CoNLL column file, as :func:`read_conll` reads its
    sentences: ``-DOCSTART-`` lines separate documents, numbered 0, 1, ... in file order (a file
    without any is one document; documents without sentences get no number)."""
    starts = [0]  # -DOCSTART- lines read so far

    def start(lineno: int, fields: list[str]) -> None:
        starts[0] += 1

    dense: dict[int, int] = {}
    return [dense.setdefault(starts[0], len(dense))
            for _ in parse_columns(enumerate(read_lines(path, encoding), 1), path, docstart=start)]


def read_conllu(path: str | Path, tag_field: str = "upos", encoding: str = "utf-8") -> list[Sentence]:
    """Sentences of a CoNLL-U file: FORM with UPOS (or XPOS). Comments, multi-word token ranges
    (``1-2``) and empty nodes (``1.1``) are skipped."""
    col = {"upos": 3, "xpos": 4}.get(tag_field.lower())
    if col is None:
        raise NertoolError(f"tag field must be 'upos' or 'xpos', got {tag_field!r}")
    lines = read_lines(path, encoding)
    sentences: list[Sentence] = []
    toks: list[str] = []
    tgs: list[str] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            if toks:
                sentences.append((toks, tgs))
                toks, tgs = [], []
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise DataFormatError(path, lineno, f"expected 10 tab-separated CoNLL-U columns, found {len(fields)}")
        tid = fields[0]
        if "-" in tid or "." in tid:
            continue
        if not tid.isdigit():
            raise DataFormatError(path, lineno, f"token id {tid!r} is not a number")
        if not fields[1] or fields[col] in ("", "_"):
            raise DataFormatError(path, lineno, f"missing FORM or {tag_field.upper()}")
        toks.append(fields[1])
        tgs.append(fields[col])
    if toks:
        sentences.append((toks, tgs))
    return sentences


def check_scheme(sentences: Sequence[Sentence], scheme: str, path: str | Path | None = None) -> str:
    """Validate tag shapes and resolve ``auto`` to a concrete scheme; ``none`` accepts any label."""
    if scheme not in SCHEMES:
        raise NertoolError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    if scheme == "none":
        return scheme
    for i, (_, tg) in enumerate(sentences):
        for t in tg:
            if t == tagmod.UNKNOWN:
                continue
            try:
                tagmod.split_tag(t)
            except tagmod.TagError as e:
                raise DataFormatError(path, None, f"sentence {i + 1}: {e}; use --scheme none for plain labels") from None
    if scheme == "auto":
        return tagmod.detect_scheme([t for t in tg if t != tagmod.UNKNOWN] for _, tg in sentences)
    return scheme


def repair(sentences: Sequence[Sentence], scheme: str) -> tuple[list[Sentence], int]:
    """Re-encode ill-formed chunks (``I-X`` after ``O`` in IOB2...) and count the repaired tokens."""
    if scheme == "none":
        return list(sentences), 0
    out, changed = [], 0
    for toks, tg in sentences:
        if tagmod.UNKNOWN in tg or tagmod.is_valid(tg, scheme):  # a partial sentence: see tags.allowed_labels
            out.append((toks, tg))
            continue
        fixed = tagmod.convert(tg, scheme, scheme)
        changed += sum(a != b for a, b in zip(tg, fixed))
        out.append((toks, fixed))
    return out, changed


def to_dataset(sentences: Sequence[Sentence], labels: Sequence[str]):
    """A ``datasets.Dataset`` with ``tokens`` and a ClassLabel sequence ``tags``."""
    import datasets

    features = datasets.Features(
        {"tokens": datasets.Sequence(datasets.Value("string")), "tags": datasets.Sequence(datasets.ClassLabel(names=list(labels)))}
    )
    index = {l: i for i, l in enumerate(labels)}
    return datasets.Dataset.from_dict(
        {"tokens": [t for t, _ in sentences], "tags": [[index.get(x, -1) for x in g] for _, g in sentences]},  # -1: UNKNOWN
        features=features
    )


def read_file(path: str | Path, data: DataConfig = DataConfig(), check_tags: bool = True) -> list[Sentence]:
    """Read a local corpus file as ``data`` says (CoNLL columns, CoNLL-U, or an annotation tool's
    export: Prodigy, doccano, Label Studio, Argilla, a spaCy DocBin; ``auto`` knows a JSON file by
    its content and a DocBin by its ``.spacy`` suffix). A named annotation format applies to the
    JSON files; a file that is not JSON (a CoNLL dev set beside Prodigy answers) is read as CoNLL."""
    if data.format == "conllu" or (data.format == "auto" and str(path).endswith(".conllu")):
        return read_conllu(path, data.tag_field, data.encoding)
    spacy_file = str(path).lower().endswith(".spacy")
    if data.format == "spacy" or (data.format != "conll" and (spacy_file or _starts_like_json(path))):
        from nertool.data.annotations import read

        # a named JSON format is for the JSON files; a CoNLL dev or test file beside them is read as CoNLL
        records, _ = read(path, "auto" if spacy_file else data.format)
        return [([t.text for t in r.tokens], r.tags()) for r in records if r.tokens]
    return read_conll(path, data.token_column, data.tag_column, data.encoding, check_tags)


def _starts_like_json(path: str | Path) -> bool:
    """True for a JSON list of tasks or JSONL records; a CoNLL line such as ``[ ( O`` is no JSON."""
    import json

    if not Path(path).is_file():  # the reader below names a missing file
        return False
    with open(path, "rb") as f:
        first = f.readline(1 << 20).lstrip(b"\xef\xbb\xbf \t\r\n").rstrip()
    if first in (b"[", b"[{") or first.startswith(b"[{"):
        return True
    if not first.startswith(b"{"):
        return False
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False


def load_corpus(
    train: "str | Path | datasets.DatasetDict",
    dev: str | Path | None = None,
    test: str | Path | None = None,
    data: DataConfig = DataConfig(),
) -> Corpus:
    """Load local files (or, for a name that is not a path, a hub dataset; or a ``datasets``
    DatasetDict, see :func:`corpus_from_datasets`) into a :class:`Corpus`.

    Ill-formed chunks are repaired with a warning that counts them, or rejected when
    ``data.strict``.
    """
    scheme = data.scheme
    if hasattr(train, "items") and not isinstance(train, (str, Path)):  # a datasets.DatasetDict
        return corpus_from_datasets(train, "<DatasetDict>", scheme)
    if not Path(train).exists() and dev is None and test is None and _looks_like_hub_name(str(train)):
        return load_hub_corpus(str(train), scheme=scheme)
    raw: dict[str, list[Sentence]] = {}
    for split, path in (("train", train), ("dev", dev), ("test", test)):
        if path is None:
            continue
        sents = read_file(path, data, check_tags=scheme != "none")
        if not sents:
            raise DataFormatError(path, None, "no sentences found")
        raw[split] = sents
    if data.format == "conllu" or str(train).endswith(".conllu"):
        scheme = "none" if scheme == "auto" else scheme
    _check_complete(raw, dev, test)
    resolved = check_scheme(raw["train"], scheme, train)
    for split, path in (("dev", dev), ("test", test)):
        if split in raw:
            check_scheme(raw[split], resolved if resolved != "none" else "none", path)
    for split, path in (("train", train), ("dev", dev), ("test", test)):
        if split in raw:
            raw[split] = _repaired(raw[split], resolved, path, data.strict)
    return _make_corpus(raw, resolved)


def _check_complete(raw: dict[str, list[Sentence]], dev, test) -> None:
    """A DataFormatError if dev or test hold unknown (``?``) tags: scoring needs every tag."""
    for split, path in (("dev", dev), ("test", test)):
        if split in raw and any(tagmod.UNKNOWN in tg for _, tg in raw[split]):
            raise DataFormatError(path, None, f"tags '{tagmod.UNKNOWN}' (unknown) are for training data only; "
                                              f"the {split} set needs every tag to score against")


def _repaired(sentences: list[Sentence], scheme: str, path, strict: bool) -> list[Sentence]:
    """``sentences`` with ill-formed chunks repaired (with a warning that counts them); an error instead when ``strict``."""
    fixed, n = repair(sentences, scheme)
    if n:
        if strict:
            raise DataFormatError(path, None, f"{n} tags break scheme {scheme} (e.g. I- after O); drop --strict to repair them")
        warnings.warn(f"{path}: repaired {n} tags that break scheme {scheme} (e.g. I- after O)", UserWarning, stacklevel=3)
    return fixed


def _make_corpus(raw: dict[str, list[Sentence]], scheme: str) -> Corpus:
    import datasets

    labels = sorted({t for sents in raw.values() for _, tg in sents for t in tg} - {tagmod.UNKNOWN}, key=_label_key)
    splits = datasets.DatasetDict({k: to_dataset(v, labels) for k, v in raw.items()})
    return Corpus(splits=splits, scheme=scheme, labels=tuple(labels))


def _label_key(label: str):
    if label == "O":
        return ("", "")
    if len(label) > 2 and label[1] == "-":
        return (label[2:], label[0])
    return (label, "")


def registry() -> dict[str, dict]:
    """The well-known corpora of ``corpora.toml``: name -> hub name, columns, scheme, licence."""
    import tomllib

    return tomllib.loads((Path(__file__).parent / "corpora.toml").read_text(encoding="utf-8"))


def _looks_like_hub_name(name: str) -> bool:
    return not name.startswith((".", "/", "~")) and "\\" not in name and Path(name).suffix == ""


def load_hub_corpus(name: str, scheme: str = "auto", tags_column: str | None = None) -> Corpus:
    """A corpus from the Hugging Face hub via ``datasets.load_dataset`` (needs network access).
    ``name`` is a registry name (``conll2003``...) or a hub dataset name."""
    import datasets

    entry = registry().get(name, {})
    hub, config = entry.get("hub", name), entry.get("config")
    tags_column = tags_column or entry.get("tags_column")
    if scheme == "auto" and entry.get("scheme"):
        scheme = entry["scheme"]
    try:
        ds = datasets.load_dataset(hub, config) if config else datasets.load_dataset(hub)
    except Exception as e:  # noqa: BLE001 - any hub failure is a user-facing error
        first = str(e).splitlines()[0] if str(e) else ""
        raise NertoolError(f"{name}: not a local file, and loading {hub!r} from the hub failed ({type(e).__name__}: {first})") from None
    return corpus_from_datasets(ds, name, scheme, tags_column)


def corpus_from_datasets(ds, name: str = "<datasets>", scheme: str = "auto", tags_column: str | None = None) -> Corpus:
    """A :class:`Corpus` from a ``datasets.DatasetDict`` with a ``tokens`` column and a tag column
    (``ner_tags``, ``tags``, ``chunk_tags``, ``pos_tags`` or ``upos``: ClassLabel ids or strings),
    and splits ``train`` and optionally ``validation`` (or ``dev``) and ``test``."""
    if not hasattr(ds, "items") or "train" not in ds:
        raise NertoolError(f"{name}: expected a DatasetDict with a 'train' split (found: {', '.join(map(str, ds)) if hasattr(ds, 'keys') else type(ds).__name__})")
    first = ds["train"]
    col = tags_column or next((c for c in ("ner_tags", "tags", "chunk_tags", "pos_tags", "upos") if c in first.features), None)
    if col is None or "tokens" not in first.features or col not in first.features:
        raise NertoolError(f"{name}: expected columns 'tokens' and {col or 'one of ner_tags/tags/chunk_tags/pos_tags/upos'}")
    names = getattr(getattr(first.features[col], "feature", None), "names", None)  # None: tags are strings
    rename = {"validation": "dev"}
    raw = {}
    for k, split in ds.items():
        if k not in ("train", "validation", "dev", "test"):
            continue
        raw[rename.get(k, k)] = [(list(r["tokens"]), [names[i] for i in r[col]] if names else [str(t) for t in r[col]])
                                 for r in split]
    resolved = check_scheme(raw["train"], scheme, name)
    return _make_corpus({k: repair(v, resolved)[0] for k, v in raw.items()}, resolved)
