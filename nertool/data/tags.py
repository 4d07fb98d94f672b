"""Tag schemes (IOB1, IOB2, BIOES): detection, validation, conversion and allowed transitions.

Pure Python, no torch. A tag is ``O`` or ``<prefix>-<type>``; IOB1/IOB2 use prefixes B and I,
BIOES adds E (end) and S (single).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

SCHEMES = ("IOB1", "IOB2", "BIOES")
_PREFIXES = {"IOB1": "BI", "IOB2": "BI", "BIOES": "BIES"}


class TagError(ValueError):
    """A tag or tag sequence that does not fit the scheme; ``index`` is the offending position."""

    def __init__(self, message: str, index: int = 0):
        super().__init__(message)
        self.index = index


def split_tag(tag: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", "")``. Raises TagError on other shapes."""
    if tag == "O":
        return "O", ""
    if len(tag) >= 3 and tag[1] in "-_" and tag[0] in "BIESLU" and tag[2:]:
        prefix = tag[0]
        # BILOU synonyms
        prefix = {"L": "E", "U": "S"}.get(prefix, prefix)
        return prefix, tag[2:]
    raise TagError(f"tag {tag!r} is not 'O' nor PREFIX-TYPE with a prefix in B, I, E, S")


def entity_types(tags: Iterable[str]) -> list[str]:
    """Sorted entity types found in the tags."""
    return sorted({split_tag(t)[1] for t in tags} - {""})


def detect_scheme(sentences: Iterable[Sequence[str]]) -> str:
    """Guess the scheme of a corpus: BIOES if E/S prefixes occur; else IOB1 if chunks open with
    I more often than with B (in IOB1, B only separates two adjacent chunks of one type), else
    IOB2. A few ill-formed chunks in an IOB2 corpus therefore do not make it IOB1."""
    seen_es = False
    i_opens = b_opens = 0
    for tags in sentences:
        prev_p, prev_t = "O", ""
        for tag in tags:
            p, t = split_tag(tag)
            if p in "ES":
                seen_es = True
            new_chunk = prev_p == "O" or prev_t != t
            if p == "I" and new_chunk:
                i_opens += 1
            elif p == "B" and new_chunk:
                b_opens += 1
            prev_p, prev_t = p, t
    if seen_es:
        return "BIOES"
    return "IOB1" if i_opens > b_opens else "IOB2"


def chunks(tags: Sequence[str], scheme: str) -> list[tuple[str, int, int]]:
    """Chunks as ``(type, start, end)`` token ranges (end exclusive).

    For IOB2/BIOES, a chunk that starts with I/E (ill-formed) opens a new chunk rather than
    being dropped: the usual conlleval repair. Raises TagError on prefixes foreign to the scheme.
    """
    return chunks_parsed([split_tag(t) for t in tags], scheme)


def chunks_parsed(parsed: Sequence[tuple[str, str]], scheme: str) -> list[tuple[str, int, int]]:
    """:func:`chunks` over tags already split into ``(prefix, type)``."""
    _check_scheme(scheme)
    allowed = _PREFIXES[scheme]
    out: list[tuple[str, int, int]] = []
    cur_type, cur_start = None, 0
    bioes = scheme == "BIOES"
    for i, (p, t) in enumerate(parsed):
        if p == "O":
            if cur_type is not None:
                out.append((cur_type, cur_start, i))
                cur_type = None
            continue
        if p not in allowed:
            raise TagError(f"tag {p}-{t} does not belong to scheme {scheme}", i)
        if p == "B" or cur_type != t or (bioes and p == "S"):
            if cur_type is not None:
                out.append((cur_type, cur_start, i))
            cur_type, cur_start = t, i
        if bioes and p in "ES":
            out.append((cur_type, cur_start, i + 1))
            cur_type = None
    if cur_type is not None:
        out.append((cur_type, cur_start, len(parsed)))
    return out


def label_map(labels: Sequence[str], source: str, target: str) -> list[str] | None:
    """Per-label conversion from ``source`` to ``target`` where one exists for valid sequences
    (same scheme; BIOES -> IOB2: E- -> I-, S- -> B-); None where conversion needs context."""
    if source == target:
        return list(labels)
    if source == "BIOES" and target == "IOB2":
        return [l if l == "O" else {"E": "I", "S": "B"}.get(l[0], l[0]) + l[1:] for l in labels]
    return None


_PREFIXES = {"IOB1": "IB", "IOB2": "BI", "BIOES": "BIES"}


def scheme_labels(labels: Sequence[str], scheme: str) -> list[str]:
    """The tags a tagger over ``labels`` (of any scheme) outputs in ``scheme``: ``O`` and each
    entity type with the scheme's prefixes; ``labels`` themselves for ``none``."""
    if scheme == "none":
        return list(labels)
    return ["O"] + [f"{p}-{t}" for t in entity_types(labels) for p in _PREFIXES[scheme]]


def marginal_map(labels: Sequence[str], internal: str, scheme: str) -> tuple[list[str], list[int]]:
    """How token marginals over ``labels`` (scheme ``internal``) add up to output labels:
    ``(output labels, index into them of each internal label)``. Exact where the conversion is
    per label (same scheme; BIOES -> IOB2); IOB1 output, which depends on the previous token,
    gets IOB2 labels."""
    table = label_map(labels, internal, scheme) or label_map(labels, internal, "IOB2") or list(labels)
    out = list(dict.fromkeys(table))
    return out, [out.index(t) for t in table]


def id_decoder(labels: Sequence[str], internal: str, scheme: str) -> Callable[[Sequence[int]], list[str]]:
    """A function from label ids (of ``labels``, in scheme ``internal``) to tags in ``scheme``:
    a per-label table where one exists, else a whole-sequence conversion."""
    table = label_map(labels, internal, scheme)
    if table is not None:
        return lambda ids: list(map(table.__getitem__, ids))
    return lambda ids: convert([labels[j] for j in ids], internal, scheme)


def continuations(labels: Sequence[str], scheme: str) -> list[int]:
    """Per label, the index of the label that would extend a chunk ending in it (``I-X`` after
    ``B-X`` or ``I-X`` in IOB schemes); -1 where none, which is every label in BIOES and none."""
    cont = [-1] * len(labels)
    if scheme in ("IOB1", "IOB2"):
        index = {l: j for j, l in enumerate(labels)}
        for i, l in enumerate(labels):
            if l != "O":
                p, t = split_tag(l)
                if p in "BI":
                    cont[i] = index.get(f"I-{t}", -1)
    return cont


def from_chunks(chunk_list: Iterable[tuple[str, int, int]], length: int, scheme: str) -> list[str]:
    """Tags of ``length`` tokens in ``scheme`` for non-overlapping chunks ``(type, start, end)``."""
    _check_scheme(scheme)
    tags = ["O"] * length
    prev_end, prev_type = -1, None
    for typ, start, end in sorted(chunk_list, key=lambda c: c[1]):
        for i in range(start, end):
            tags[i] = f"I-{typ}"
        if scheme == "IOB2":
            tags[start] = f"B-{typ}"
        elif scheme == "IOB1":
            if prev_end == start and prev_type == typ:
                tags[start] = f"B-{typ}"
        else:
            if end - start == 1:
                tags[start] = f"S-{typ}"
            else:
                tags[start] = f"B-{typ}"
                tags[end - 1] = f"E-{typ}"
        prev_end, prev_type = end, typ
    return tags


def convert(tags: Sequence[str], source: str, target: str) -> list[str]:
    """Convert one tag sequence between schemes (ill-formed chunks are repaired as in ``chunks``)."""
    if source == target and is_valid(tags, source):
        return list(tags)
    return from_chunks(chunks(tags, source), len(tags), target)


def is_valid(tags: Sequence[str], scheme: str) -> bool:
    """True if every transition in ``tags`` is allowed by ``scheme`` (including start and end)."""
    try:
        parsed = [split_tag(t) for t in tags]
    except TagError:
        return False
    prev = ("O", "")
    if any(p != "O" and p not in _PREFIXES.get(scheme, "") for p, _ in parsed):
        return False
    for cur in parsed:
        if not _allowed(prev, cur, scheme):
            return False
        prev = cur
    return _allowed(prev, ("O", ""), scheme, at_end=True)


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")


def _allowed(prev: tuple[str, str], cur: tuple[str, str], scheme: str, at_end: bool = False) -> bool:
    """Whether tag ``cur`` may follow ``prev``; ``at_end`` asks whether ``prev`` may end a sentence
    (``prev = ("O", "")`` at the start of a sentence)."""
    pp, pt = prev
    cp, ct = cur
    if scheme == "BIOES":
        if at_end:
            return pp in "OES"
        if pp in "OES":
            return cp in "OBS"
        # pp in "BI": must continue the same chunk
        return cp in "IE" and ct == pt
    if scheme == "IOB2":
        if at_end:
            return True
        if cp == "I":
            return pp in "BI" and pt == ct
        return True
    # IOB1: I may start a chunk; B only directly after a chunk of the same type
    if at_end:
        return True
    if cp == "B":
        return pp in "BI" and pt == ct
    return True


def allowed_transitions(scheme: str, labels: Sequence[str]) -> tuple[list[bool], list[bool], list[list[bool]]]:
    """Allowed starts, ends and transitions for ``labels`` under ``scheme``.

    Returns ``(start, end, trans)`` with ``start[j]``: label j may begin a sentence, ``end[i]``:
    label i may end one, ``trans[i][j]``: label j may follow label i.
    """
    _check_scheme(scheme)
    parsed = [split_tag(t) for t in labels]
    o = ("O", "")
    start = [_allowed(o, c, scheme) for c in parsed]
    end = [_allowed(p, o, scheme, at_end=True) for p in parsed]
    trans = [[_allowed(p, c, scheme) for c in parsed] for p in parsed]
    return start, end, trans


UNKNOWN = "?"  # a token whose tag is not known (partial annotation): any label may be there


def allowed_labels(tags: Sequence[str], scheme: str, internal: str, labels: Sequence[str],
                   candidates: Sequence[str]) -> list[list[int]]:
    """For each token of a partially tagged sentence (``UNKNOWN`` where the tag is not known), the
    ids of the ``labels`` (internal scheme) that a completion of the unknown tags could give it.
    ``candidates``: the corpus's labels, which an unknown neighbour may take. A known tag's internal
    form depends on its neighbours only (``B-X`` is ``S-X`` in BIOES unless an ``I-X`` follows), so
    the unknown neighbours' candidates are tried in a three-token window."""
    index = {label: k for k, label in enumerate(labels)}
    out: list[list[int]] = []
    for i, t in enumerate(tags):
        if t == UNKNOWN:
            out.append(list(range(len(labels))))
            continue
        if scheme == internal:
            out.append([index[t]] if t in index else [])
            continue
        left = [] if i == 0 else (list(candidates) if tags[i - 1] == UNKNOWN else [tags[i - 1]])
        right = [] if i + 1 == len(tags) else (list(candidates) if tags[i + 1] == UNKNOWN else [tags[i + 1]])
        found = set()
        for a in left or [None]:
            for b in right or [None]:
                window = [x for x in (a, t, b) if x is not None]
                found.add(convert(window, scheme, internal)[0 if a is None else 1])
        out.append(sorted(index[y] for y in found if y in index) or list(range(len(labels))))
    return out
