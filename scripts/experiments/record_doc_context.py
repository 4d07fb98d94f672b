"""Measure a model directory's CoNLL-2003 test scores with document context and record them in
its config.json (``scores.test_doc_context``), the weights written back unchanged.

    .venv/bin/python scripts/experiments/record_doc_context.py nertool/models/en [--weight 1]
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST = ROOT.parent / "shared" / "corpora" / "conll2003" / "test.txt"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--weight", type=float, default=1.0)
    args = ap.parse_args()

    from nertool.store.checkpoint import load_model, save_model
    from nertool.training.evaluate import evaluate_bundle_file

    d = Path(args.model)
    digest = lambda: hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()  # noqa: E731
    before = digest()
    bundle = load_model(d)
    r = evaluate_bundle_file(bundle, TEST, doc_context=args.weight)
    bundle.meta.setdefault("scores", {})["test_doc_context"] = {k: r[k] for k in ("precision", "recall", "f1")}
    bundle.meta["scores"]["doc_context_weight"] = args.weight
    refer = (d / "config.json").read_text().find('"pretrained_reference"') >= 0
    save_model(d, bundle, refer=refer)
    if digest() != before:
        raise SystemExit(f"{d}: the weights changed on saving; restore them from git")
    print(f"{d}: test F1 with document context (weight {args.weight}): {100 * r['f1']:.2f}")


if __name__ == "__main__":
    main()
