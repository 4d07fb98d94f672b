"""Bulk jobs: input paths (files, directories, globs) -> an engine -> one output per input, written
atomically, so a rerun skips what is done. The same for every engine (in-process, workers, Ray)."""
from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from nertool.errors import BadLines, NertoolError
from nertool.fileio import atomic_write, atomic_write_text
from nertool.tag.engines import Engine

OUTPUT_SUFFIX = {"jsonl": ".jsonl", "docs": ".jsonl", "conll": ".conll", "inline": ".txt", "spacy": ".spacy"}
INPUT_SUFFIXES = (".txt", ".text", ".conll", ".iob", ".bio", ".jsonl", ".ndjson")
MANIFEST = ".nertool-done.json"  # in an output directory: the finished outputs and their inputs' fingerprints


@dataclass(frozen=True)
class Job:
    """One input and where its output goes (``None``: standard output)."""

    source: str
    target: Path | None


def expand_inputs(specs: list[str], exclude: Path | None = None) -> list[tuple[str, Path]]:
    """``(input, path relative to the output directory)`` for each file named by ``specs``: a file
    as given, a directory's files (recursively, known suffixes), a glob's matches; ``-`` is stdin.
    Relative paths start at the deepest folder that holds every input, so inputs of the same name
    in different folders keep apart. Files under ``exclude`` (the output directory) are left out:
    a rerun never reads its own outputs as inputs."""
    found: list[tuple[str, Path]] = []  # (input, its root: the folder its relative path starts at)
    skip = Path(os.path.abspath(exclude)) if exclude is not None else None
    for spec in specs:
        p = Path(spec)
        if spec == "-" or p.is_file():
            found.append((spec, p.parent))
        elif p.is_dir():
            every = sorted(f for f in p.rglob("*") if f.is_file() and not _inside(f, skip))
            files = [f for f in every if f.suffix.lower() in INPUT_SUFFIXES]
            if not files:
                raise NertoolError(f"{spec}: directory has no input files ({', '.join(INPUT_SUFFIXES)})")
            _warn_left_out(spec, [f for f in every if f.suffix.lower() not in INPUT_SUFFIXES
                                  and not f.name.startswith(".")])
            found += [(str(f), p) for f in files]
        else:
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                raise NertoolError(f"{spec}: no such file, directory or glob match")
            found += [(m, Path(m).parent) for m in matches if Path(m).is_file() and not _inside(Path(m), skip)]
    roots = {os.path.abspath(root) for src, root in found if src != "-"}
    top = Path(os.path.commonpath(sorted(roots))) if roots else None
    return [(src, Path("stdin") if src == "-" else Path(os.path.abspath(src)).relative_to(top)) for src, _ in found]


def _warn_left_out(spec: str, others: list[Path]) -> None:
    """A warning for the files of a directory that are not read (their suffix is not an input's)."""
    if others:
        names = ", ".join(f.name for f in others[:3]) + (", ..." if len(others) > 3 else "")
        warnings.warn(f"{spec}: left out {len(others)} file(s) of other suffixes ({names}); name them, or a "
                      f"glob such as '{spec.rstrip('/')}/**/*{others[0].suffix}', with --input-format",
                      UserWarning, stacklevel=3)


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and Path(os.path.abspath(path)).is_relative_to(folder)


def plan(specs: list[str], output: Path | None, fmt: str) -> list[Job]:
    """The jobs of a run: without ``output``, everything to stdout; with one input and an output
    that is not a directory, that file; else one file per input inside the ``output`` directory,
    at the input's relative path. Two inputs that would write one output are refused, naming both,
    before anything is written."""
    inputs = expand_inputs(specs, exclude=output if output is not None and output.is_dir() else None)
    single = len(inputs) == 1 and not any(Path(s).is_dir() for s in specs)
    if output is None:
        jobs = [Job(src, None) for src, _ in inputs]
    elif single and not output.is_dir() and not str(output).endswith(("/", "\\")):
        jobs = [Job(inputs[0][0], output)]
    else:
        if output.exists() and not output.is_dir():
            raise NertoolError(f"{output}: exists and is not a directory; several inputs need an output directory")
        if not output.exists() and output.suffix.lower() in set(OUTPUT_SUFFIX.values()):
            raise NertoolError(f"{output}: {len(inputs)} inputs need an output directory, and this name looks "
                               f"like a file; give a directory name (it is made) or tag one input at a time")
        jobs = [Job(src, output / rel.with_suffix(OUTPUT_SUFFIX[fmt])) for src, rel in inputs]
    seen: dict[Path, str] = {}
    for job in jobs:
        if job.target is None:
            continue
        if job.source != "-" and Path(job.source).resolve() == job.target.resolve():
            raise NertoolError(f"{job.source}: the output would replace this input; choose another output")
        if job.target in seen:
            raise NertoolError(f"{seen[job.target]} and {job.source} would both be written to {job.target}; "
                               "rename one, or tag them into different output directories")
        seen[job.target] = job.source
    return jobs


class Manifest:
    """What a bulk run into an output directory has finished: each output with the fingerprint of
    its input (size, modification time, SHA-256) and of the model and options, in ``MANIFEST``
    there. A rerun skips an output only when its input and settings are unchanged."""

    def __init__(self, directory: Path, settings: str):
        self.path, self.settings = directory / MANIFEST, settings
        self._saved = 0.0
        try:
            self.done: dict[str, dict] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.done = {}
        self.seen: dict[str, dict] = {}

    def key(self, job: Job) -> str:
        return job.target.relative_to(self.path.parent).as_posix()

    def fingerprint(self, job: Job) -> dict:
        st = Path(job.source).stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "settings": self.settings}

    def finished(self, job: Job) -> bool:
        """True when ``job``'s output exists and was made from this very input with these settings.
        Notes the input's size and time as they are now, before the run tags it."""
        if job.source == "-" or job.target is None:
            return False
        now, before = self.fingerprint(job), self.done.get(self.key(job))
        self.seen[self.key(job)] = now
        if not job.target.exists() or before is None or any(before.get(k) != now[k] for k in ("size", "settings")):
            return False
        if before.get("mtime_ns") == now["mtime_ns"]:
            return True
        now["sha256"] = _sha256(job.source)  # touched, maybe not changed
        return before.get("sha256") == now["sha256"]

    def record(self, job: Job) -> None:
        """``job``'s output is complete: note its input (size and time as the run began; the
        SHA-256, unless :meth:`finished` needed it already, now)."""
        if job.source == "-" or job.target is None:
            return
        fp = self.seen[self.key(job)]
        fp.setdefault("sha256", _sha256(job.source))
        self.done[self.key(job)] = fp
        if len(self.done) < 1000 or time.monotonic() - self._saved > 1.0:  # many small files: once a second
            self.save()

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.done, indent=0, sort_keys=True) + "\n")
        self._saved = time.monotonic()


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def pending(jobs: list[Job], force: bool, manifest: Manifest | None = None) -> list[Job]:
    """The jobs still to do: all with ``force``, a single job, or jobs without a manifest; else
    those whose output the manifest does not show as made from the same input and settings."""
    if manifest is None:
        return list(jobs)
    undone = [j for j in jobs if not manifest.finished(j)]  # every input's fingerprint taken here
    return list(jobs) if force or len(jobs) == 1 else undone


def remove_stale_temporaries(jobs: list[Job]) -> int:
    """Delete the temporary files a killed run left beside these outputs (call it holding the
    output directory's lock); returns how many."""
    n = 0
    for job in jobs:
        if job.target is not None and job.target.parent.is_dir():
            for tmp in job.target.parent.glob(f".{glob.escape(job.target.name)}.*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                    n += 1
    return n


def input_bytes(jobs: list[Job]) -> int:
    return sum(Path(j.source).stat().st_size for j in jobs if j.source != "-")


def run_jobs(engine: Engine, jobs: list[Job], bad: BadLines, stdout: BinaryIO,
             progress: Callable[[Job], Callable[[int, int], None] | None] = lambda job: None,
             done: Callable[[Job], None] = lambda job: None, whole: Callable[[bytes], bytes] | None = None) -> int:
    """Tag every job's input with ``engine``; each output is written atomically (standard output
    for a job without a target) and every job gets its output, empty or not. An input is read only
    once the output before it is complete, so a bad input stops the run with every earlier output
    whole. ``progress(job)`` gives the callback ``(bytes_read, tokens)`` of that job. Returns the
    number of tokens tagged. ``done(job)`` is called once each output is complete. With ``whole``,
    each output is gathered and written as ``whole(all its bytes)`` (a DocBin, say) once complete."""
    stream = engine.run([j.source for j in jobs], bad)
    pending = next(stream, None)
    tokens = 0
    for k, job in enumerate(jobs):
        report = progress(job)
        with _output(job, stdout, whole) as out:
            while pending is not None and pending[0] == k and pending[1] is not None:
                _, data, n, pos = pending
                out.write(data)
                tokens += n
                if report is not None:
                    report(pos, n)
                pending = next(stream, None)
        done(job)
        if pending is not None and pending[0] == k:  # the input's end: read the next one only now
            pending = next(stream, None)
    return tokens


@contextlib.contextmanager
def _output(job: Job, stdout: BinaryIO, whole: Callable[[bytes], bytes] | None = None) -> Iterator[BinaryIO]:
    if whole is not None:
        buf = io.BytesIO()
        yield buf
        with _output(job, stdout) as out:
            out.write(whole(buf.getvalue()))
    elif job.target is None:
        yield stdout
        stdout.flush()
    else:
        with atomic_write(job.target, "wb", encoding=None) as f:
            yield f
