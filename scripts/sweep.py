"""Compare configuration variants over several seeds, training runs in parallel processes.

    python scripts/sweep.py TRAIN DEV TEST --embeddings glove-6b-50d --device cuda --workers 8 \
        --seeds 42,1,2 --out runs/sweep base layers1:num_layers=1 h100:hidden_size=100,char_hidden=80

A variant is ``NAME`` or ``NAME:key=value,...`` with keys of the [model] and [train] config sections
(``base`` with no overrides is the project's defaults). Each finished run appends one JSON line
(variant, seed, best dev F1, test F1, epochs, minutes) to OUT/results.jsonl; at the end a table
gives each variant's mean and spread, sorted by mean dev F1: choose on dev, read test for the record.
"""
from __future__ import annotations

import argparse
import ast
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nertool.config import ModelConfig, TrainConfig  # noqa: E402

SECTIONS = {f.name: "model" for f in fields(ModelConfig)} | {f.name: "train" for f in fields(TrainConfig)}


def parse_variant(text: str) -> tuple[str, dict[str, dict]]:
    name, _, rest = text.partition(":")
    sections: dict[str, dict] = {"model": {}, "train": {}}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key not in SECTIONS:
            raise SystemExit(f"variant {name}: unknown key {key!r}")
        try:
            v = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            v = value
        sections[SECTIONS[key]][key] = v
    return name, sections


def toml(sections: dict[str, dict]) -> str:
    out = []
    for sec, items in sections.items():
        out.append(f"[{sec}]")
        out += [f"{k} = {json.dumps(v)}" for k, v in items.items()]
    return "\n".join(out) + "\n"


def run_one(args, name: str, sections: dict, seed: int) -> dict:
    run = Path(args.out) / f"{name}-s{seed}"
    run.mkdir(parents=True, exist_ok=True)
    cfg = run.parent / f"{name}-s{seed}.toml"
    cfg.write_text(toml(sections))
    cmd = [sys.executable, "-m", "nertool", "train", args.train, "--dev", args.dev, "--test", args.test,
           "--config", str(cfg), "--seed", str(seed), "--device", args.device, "--threads", str(args.threads),
           "--out", str(run)]
    if args.embeddings:
        cmd += ["--embeddings", args.embeddings]
    if args.max_minutes:
        cmd += ["--max-minutes", str(args.max_minutes)]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    minutes = (time.monotonic() - t0) / 60
    row = {"variant": name, "seed": seed, "minutes": round(minutes, 1), "rc": proc.returncode}
    if proc.returncode == 0:
        scores = json.loads((run / "config.json").read_text())["scores"]
        epochs = sum(1 for _ in (run / "metrics.jsonl").open())
        row.update(dev_f1=round(100 * scores["dev"]["f1"], 2), test_f1=round(100 * scores["test"]["f1"], 2),
                   best_epoch=scores["best_epoch"], epochs=epochs, stopped_by=scores.get("stopped_by"))
    else:
        row["error"] = proc.stderr.strip().splitlines()[-1:] or ["?"]
    with (Path(args.out) / "results.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train")
    ap.add_argument("dev")
    ap.add_argument("test")
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--embeddings")
    ap.add_argument("--seeds", default="42,1,2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    ap.add_argument("--max-minutes", type=float, default=0.0)
    ap.add_argument("--out", default="runs/sweep")
    args = ap.parse_args()
    variants = [parse_variant(v) for v in args.variants]
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [(name, sec, s) for s in seeds for name, sec in variants]  # every variant's first seed first
    with ThreadPoolExecutor(args.workers) as pool:
        rows = list(pool.map(lambda j: run_one(args, *j), jobs))
    print(f"\n{'variant':<16} {'runs':>4} {'dev F1':>14} {'test F1':>14} {'epochs':>6} {'min':>5}")
    by: dict[str, list[dict]] = {}
    for r in rows:
        if r["rc"] == 0:
            by.setdefault(r["variant"], []).append(r)

    def stat(rs, k):
        xs = [r[k] for r in rs]
        return f"{statistics.mean(xs):6.2f} ±{statistics.pstdev(xs):4.2f}"

    for name, rs in sorted(by.items(), key=lambda kv: -statistics.mean(r["dev_f1"] for r in kv[1])):
        print(f"{name:<16} {len(rs):>4} {stat(rs, 'dev_f1'):>14} {stat(rs, 'test_f1'):>14} "
              f"{statistics.mean(r['epochs'] for r in rs):6.1f} {statistics.mean(r['minutes'] for r in rs):5.1f}")


if __name__ == "__main__":
    main()
