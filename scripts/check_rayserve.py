"""The service on Ray Serve in local mode (`nertool.serving.rayserve`): starts Ray with N CPUs,
runs the app with N replicas behind Ray's proxy on 127.0.0.1, checks its answers against the
Tagger's, and times a bounded load (the same load generator as bench_serve.py). Run alone:

    .venv/bin/python scripts/check_rayserve.py en-fast [--replicas 2] [--clients 64] [--requests 4000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import free_port, phase, sentences  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="en-fast")
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests", type=int, default=4000)
    args = ap.parse_args()
    import urllib.request

    import ray
    from ray import serve

    from nertool import Tagger
    from nertool.serving import ServeConfig
    from nertool.serving.rayserve import application

    port = free_port()
    ray.init(num_cpus=args.replicas, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(application(ServeConfig(model=args.model), num_replicas=args.replicas), route_prefix="/")
        texts = ["Angela Merkel met Emmanuel Macron in Paris.", "EU rejects German call to boycott British lamb."]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/tag", json.dumps({"texts": texts}).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            got = json.loads(r.read())
        want = [[(s.start, s.end, s.label) for s in d.spans] for d in Tagger.load(args.model).pipe(texts)]
        same = [[(s["start"], s["end"], s["label"]) for s in rec["spans"]] for rec in got] == want
        print(f"answers equal the Tagger's: {same}")
        r = asyncio.run(phase(port, sentences(), args.clients, args.requests, 120))
        print(f"Ray Serve, {args.replicas} replica(s), {args.clients} clients: {json.dumps(r)}")
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
