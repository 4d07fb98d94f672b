"""Build the bundled English model (nertool/models/en) from a CoNLL-2003 run directory.

    .venv/bin/python scripts/make_bundled_model.py runs/en

The run is compacted (trained corrections folded into the pretrained rows, float16 storage, the
vectors of words never seen in training packed to 4 bits a value unless --no-pack); of
the GloVe words never seen in training, only the most frequent N are kept, N being the smallest
candidate whose dev F1 is within --tolerance (default 0.2 points) of keeping them all: chosen on
dev, never on test. Test scores of every candidate are printed for the record. With a single
--candidates value (for a run that trained on dev, where dev cannot choose) that value is kept.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
C = ROOT.parent / "shared" / "corpora" / "conll2003"
CANDIDATES = [0, 10_000, 25_000, 50_000, 100_000, 200_000, None]  # None: all


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--out", default=str(ROOT / "nertool" / "models" / "en"))
    ap.add_argument("--tolerance", type=float, default=0.2, help="dev F1 points one may give up for size")
    ap.add_argument("--candidates", default=",".join("all" if n is None else str(n) for n in CANDIDATES))
    ap.add_argument("--no-pack", dest="pack", action="store_false",
                    help="keep the pretrained-only vectors in float16 instead of 4-bit codes")
    ap.add_argument("--dev-in-train", action="store_true",
                    help="the run trained on train + dev: record that, and no dev score")
    args = ap.parse_args()

    from nertool.checkpoint import compact, load_model, save_model
    from nertool.conll import read_conll
    from nertool.evaluate import evaluate

    full = load_model(args.run)
    dev, test = read_conll(C / "valid.txt"), read_conll(C / "test.txt")
    extra_all = len(full.words) - full.model.n_tuned
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.candidates.split(","):
            keep = extra_all if n == "all" else min(int(n), extra_all)
            small = compact(full, keep)
            d = Path(tmp) / str(keep)
            save_model(d, small, half=True, pack=args.pack)
            small = load_model(d)  # score what will ship: float16 weights read back
            size = sum(f.stat().st_size for f in d.iterdir()) / 2**20
            rd, rt = evaluate(small, dev)["f1"], evaluate(small, test)["f1"]
            rows.append((keep, size, rd, rt, d))
            print(f"extra words {keep:>7}: {size:6.1f} MB  dev F1 {100 * rd:.2f}  test F1 {100 * rt:.2f}", flush=True)
        best_dev = max(r[2] for r in rows)
        keep, size, rd, rt, d = next(r for r in sorted(rows) if r[2] >= best_dev - args.tolerance / 100)
        bundle = load_model(d)
        bundle.meta["scores"] = {**bundle.meta.get("scores", {}), "dev": {"f1": rd}, "test": {"f1": rt}}
        if args.dev_in_train:
            bundle.meta["scores"].pop("dev")
            bundle.meta["corpus"] = {**bundle.meta.get("corpus", {}), "train": "conll2003 train.txt + valid.txt",
                                     "dev": None, "test": "conll2003 test.txt"}
        bundle.meta["bundled"] = {"source_run": str(args.run), "extra_pretrained_words": keep,
                                  "weights": "float16" + (", pretrained-only rows as 4-bit codes" if args.pack else ""),
                                  "selection": f"smallest extra vocabulary within {args.tolerance} dev F1 points of all"
                                  if len(rows) > 1 else "fixed by --candidates"}
        out = Path(args.out)
        if out.exists():
            shutil.rmtree(out)
        save_model(out, bundle, half=True, pack=args.pack)
    print(f"chose {keep} extra words: {size:.1f} MB, dev F1 {100 * rd:.2f}, test F1 {100 * rt:.2f} -> {out}")


if __name__ == "__main__":
    main()
