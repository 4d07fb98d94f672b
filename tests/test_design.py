"""The package's shape: short functions, one inference path, one options type, hooks in the loop."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from conftest import run_cli

PACKAGE = Path(__file__).resolve().parents[1] / "nertool"
MAX_BODY_LINES = 60


def _functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(PACKAGE.parent), node


def test_no_function_body_is_longer_than_60_lines():
    """A function's body (docstring included, the signature not: typer commands declare their
    options there) stays readable in one screen."""
    long = [f"{p}:{n.lineno} {n.name} ({n.end_lineno - n.body[0].lineno + 1} lines)"
            for p, n in _functions() if n.end_lineno - n.body[0].lineno + 1 > MAX_BODY_LINES]
    assert long == []


def test_the_package_shows_its_stages():
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "config.py", "errors.py", "fileio.py", "raydata.py", "runtime.py",
                    "spacy_pipe.py"]
    for stage in ("data", "model", "store", "training", "tag", "serving", "cli"):
        assert (PACKAGE / stage / "__init__.py").is_file()


def test_one_module_knows_the_run_directory_file_names():
    """Every literal file name of a model or run directory lives in nertool/store/rundir.py."""
    from nertool.store import rundir

    names = set(rundir.RUN_FILES)
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "rundir.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.name}:{node.lineno} {node.value}")
    assert found == []


def test_evaluation_scores_what_the_tag_command_writes(tiny_model, tiny_corpus, tmp_path):
    """`nertool evaluate` and `nertool tag --format conll` go through one inference path: the
    evaluation's F1 is the F1 of the tags the tag command writes for the same file."""
    from nertool.data.conll import read_conll
    from nertool.training.evaluate import evaluate_file, score

    test = tiny_corpus["test"]
    out = tmp_path / "tagged.conll"
    r = run_cli("tag", str(tiny_model), str(test), "--format", "conll", "-o", str(out))
    assert r.returncode == 0, r.stderr
    gold = read_conll(test)
    tagged = read_conll(out)  # the input's columns, then the predicted tag
    assert [t for t, _ in tagged] == [t for t, _ in gold]
    by_tag_command = score([g for _, g in gold], [p for _, p in tagged], "IOB2")
    assert by_tag_command["f1"] > 0.5
    for mode_key in ("precision", "recall", "f1"):
        assert evaluate_file(str(tiny_model), test)[mode_key] == pytest.approx(by_tag_command[mode_key], abs=1e-12)


def test_evaluation_tags_equal_the_taggers_with_document_context(tiny_model, tiny_corpus):
    from nertool.data.conll import read_conll
    from nertool.store.loading import load
    from nertool.tag.tagger import Tagger
    from nertool.training.evaluate import predict

    sents = [t for t, _ in read_conll(tiny_corpus["test"])]
    documents = [i // 5 for i in range(len(sents))]
    bundle = load(str(tiny_model))
    bundle.model.train()
    tags = predict(bundle, sents, batch_size=7, documents=documents, doc_context=1.0)
    assert bundle.model.training  # left in the mode it was in
    tagger = Tagger.load(str(tiny_model), batch_size=64)
    results = tagger.tag_sentences(sents, documents=documents, doc_context=1.0)
    assert tags == [r.tags for r in results]


def test_tag_options_reject_what_they_do_not_know():
    from nertool.errors import ConfigError
    from nertool.tag.options import TagOptions

    opts = TagOptions(nbest=2)
    assert opts.with_(scores=False).needs_posteriors  # n-best needs forward-backward too
    assert not TagOptions(scores=False).needs_posteriors
    with pytest.raises(ConfigError, match="unknown tagging option"):
        opts.with_(n_best=3)
    with pytest.raises(ConfigError, match="jsonl"):
        TagOptions(nbest=2, output_format="conll")
    with pytest.raises(ConfigError, match="output format"):
        TagOptions(output_format="xml")
    assert TagOptions.from_dict(opts.to_dict()) == opts


def test_a_hook_stops_training_and_the_run_ends_whole(tiny_corpus, tmp_path):
    """A hook after each epoch's evaluation (a pruner, say) stops the run; the best model so far
    is saved, scored on test, and the run's state says why it ended."""
    from nertool.config import Config
    from nertool.data.conll import load_corpus
    from nertool.store import rundir
    from nertool.training.loop import train

    seen = []

    def prune_after_two(run, record):
        seen.append((record["epoch"], "dev_f1" in record))
        return "pruned" if record["epoch"] == 2 else None

    corpus = load_corpus(tiny_corpus["train"], tiny_corpus["dev"], tiny_corpus["test"])
    base = Config()
    cfg = Config(model=base.model.replace(hidden_size=16, char_hidden=8),
                 train=base.train.replace(epochs=6, batch_size=16, patience=0, threads=1))
    result = train(corpus, cfg, tmp_path / "run", hooks=[prune_after_two])
    assert seen == [(1, True), (2, True)]  # called after the evaluation, once per epoch
    assert result.stopped_by == "pruned" and result.epochs_run == 2 and result.test is not None
    assert rundir.read_state(tmp_path / "run")["stopped_by"] == "pruned"
    saved = json.loads((tmp_path / "run" / rundir.CONFIG).read_text())
    assert saved["scores"]["stopped_by"] == "pruned"


def test_the_bundled_models_share_one_vocabulary_and_carry_no_paths():
    from nertool.store.locate import BUNDLED_DIR, bundled_models

    names = bundled_models()
    assert {"en", "en-fast"} <= set(names)
    shared = set()
    for name in names:
        config = json.loads((BUNDLED_DIR / name / "config.json").read_text())
        assert not (BUNDLED_DIR / name / "words.json").exists()
        shared.add((BUNDLED_DIR / name / config["shared_words"]["file"]).resolve())
        text = json.dumps(config)
        assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text
    assert len(shared) == 1


def test_a_shared_vocabulary_is_checked_by_its_sha256(tmp_path):
    import shutil

    from nertool.errors import ModelError
    from nertool.store.loading import load
    from nertool.store.locate import BUNDLED_DIR

    model = tmp_path / "models" / "en-fast"
    shutil.copytree(BUNDLED_DIR / "en-fast", model)
    (tmp_path / "models" / "vocab").mkdir()
    words = tmp_path / "models" / "vocab" / "en-words.json"
    words.write_bytes((BUNDLED_DIR / "vocab" / "en-words.json").read_bytes().replace(b'"the": 2', b'"thee": 2', 1))
    with pytest.raises(ModelError, match="sha256"):
        load(str(model))
