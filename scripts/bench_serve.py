"""`nertool serve` under load: latency and throughput against the offline model-only rate of the
same model, in one run. Starts the service on 127.0.0.1 (a free port), drives it with a bounded
load generator of its own (asyncio, one keep-alive connection per client; a fixed number of
requests and a time limit per phase), and stops it with SIGTERM. Run alone on an idle machine:

    .venv/bin/python scripts/bench_serve.py en-fast [--workers 1] [--threads 2] [--device cpu]

Phases: 1 client (latency), 8 clients (latency), 64 clients (tokens/s), each after --warm-s (10)
seconds of warm-up at its concurrency that is not counted; 256 clients against a queue of 16
(429s, not timeouts), and with --soak-min N a soak at 8 clients (RSS of the service).
With ``--ray N``: the same first three phases against the app on Ray Serve (``nertool.serving.rayserve``,
N replicas, Ray started here in local mode) instead of ``nertool serve``.
Sentences: CoNLL-2003 test (../shared) of 15 to 25 tokens, each sent as one text.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT.parent / "shared" / "corpora" / "conll2003" / "test.txt"


def sentences() -> list[list[str]]:
    from nertool.data.conll import read_conll

    if TEST.exists():
        sents = [toks for toks, _ in read_conll(TEST)]
    else:  # no corpora here: the sample corpus
        sents = [toks for toks, _ in read_conll(ROOT / "corpora" / "sample" / "train.conll")]
    return [s for s in sents if 15 <= len(s) <= 25]


def offline_rate(model: str, sents: list[list[str]], threads: int, device: str, seconds: float = 5.0) -> float:
    """The network alone (pre-tokenised, spans with scores), batches of 256: tokens/s."""
    from nertool import Tagger

    tagger = Tagger.load(model, device=device, threads=threads)
    tagger.tag_sentences(sents[:512])  # warm
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        tagger.tag_sentences(sents)
        n += sum(len(s) for s in sents)
    return n / (time.perf_counter() - t0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def client(port: int, bodies: Iterator[tuple[bytes, int]], deadline: float, out: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for body, tokens in bodies:  # shared by all clients: each takes the next request there is
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            writer.write(b"POST /tag HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            out["latency"].append(time.perf_counter() - t0)
            out["status"][status] = out["status"].get(status, 0) + 1
            out["tokens"] += tokens if status == 200 else 0
    except (ConnectionError, asyncio.IncompleteReadError) as e:
        out["status"][type(e).__name__] = out["status"].get(type(e).__name__, 0) + 1
    finally:
        writer.close()


async def phase(port: int, sents: list[list[str]], clients: int, requests: int, seconds: float) -> dict:
    out: dict = {"latency": [], "status": {}, "tokens": 0}
    deadline = time.monotonic() + seconds
    t0 = time.perf_counter()
    bodies = [(json.dumps({"text": " ".join(s)}).encode(), len(s)) for s in sents]
    # one budget of requests for all clients, made as they are sent (a soak's are not all held at
    # once): with a quota per client, the clients of the less busy service process finished first
    # and left that process idle for the rest of the phase (BENCHMARKS.md 21.12)
    shared = (bodies[i % len(bodies)] for i in range(requests))
    jobs = [client(port, shared, deadline, out) for _ in range(clients)]
    await asyncio.gather(*jobs)
    wall = time.perf_counter() - t0
    lat = sorted(out["latency"])
    toks = out["tokens"]
    pct = (lambda q: 1000 * lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: float("nan"))
    return {"clients": clients, "requests": len(lat), "status": out["status"], "p50_ms": round(pct(0.5), 2),
            "p99_ms": round(pct(0.99), 2), "tokens_per_s": round(toks / wall), "wall_s": round(wall, 1)}


def rss_mb(pid: int) -> float:
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
        except (OSError, StopIteration):
            pass
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time of the processes ``pids`` so far."""
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
    return total


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return out


def start(model: str, port: int, args, queue: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "nertool", "serve", model, "--port", str(port), "--workers", str(args.workers),
           "--threads", str(args.threads), "--device", args.device, "--max-queue", str(queue), "--no-access-log"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_ready(port, 60):
        p.kill()
        raise SystemExit("the service did not become ready in 60 s")
    return p


def wait_ready(port: int, seconds: float) -> bool:
    """Whether ``GET /ready`` on the loopback ``port`` answers within ``seconds``."""
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def run_phases(port: int, sents: list[list[str]], rate: float, scale: float, pids: list[int] | None = None,
               warm_s: float = 10.0) -> None:
    """The 1, 8 and 64 client phases, printed; at 64 clients the share of the offline ``rate``
    and, given the service's ``pids``, the CPU time per token of the service and of this process."""
    for clients, requests, seconds in ((1, 2000, 60), (8, 10000, 60), (64, 40000, 90)):
        # warm-up at the same concurrency, not counted: the first batches of each new shape pay
        # for oneDNN's kernel preparation (a millisecond or more each), which a running service
        # has long paid; the offline rate is a warm rate too
        asyncio.run(phase(port, sents, clients, 10**9, warm_s * scale))
        used = cpu_seconds(pids or []), time.process_time()
        r = asyncio.run(phase(port, sents, clients, int(requests * scale), seconds * scale))
        share = ""
        if clients == 64:
            share = f", {100 * r['tokens_per_s'] / rate:.0f}% of offline"
            tokens = r["tokens_per_s"] * r["wall_s"]
            if pids:
                service = cpu_seconds(pids) - used[0]
                share += (f"; CPU: the service {1e6 * service / tokens:.1f} us/token "
                          f"({1e3 * service / max(1, r['requests']):.2f} ms/request), the load generator "
                          f"{1e6 * (time.process_time() - used[1]) / tokens:.1f} us/token, offline {1e6 / rate:.1f} us/token")
        print(f"{clients:3d} client(s): {json.dumps(r)}{share}")


def stop(p: subprocess.Popen) -> int:
    p.send_signal(signal.SIGTERM)
    return p.wait(60)


def on_ray(args, sents: list[list[str]], rate: float) -> None:
    """The first three phases against ``args.ray`` replicas of the app on Ray Serve, Ray local."""
    import ray
    from ray import serve

    from nertool.serving import ServeConfig
    from nertool.serving.rayserve import application

    port = free_port()
    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(application(ServeConfig(model=args.model, threads=args.threads), num_replicas=args.ray,
                              cpus_per_replica=os.cpu_count() / args.ray), blocking=False)
        if not wait_ready(port, 300):
            raise SystemExit("Ray Serve did not become ready in 300 s")
        print(f"Ray Serve, {args.ray} replica(s), ready in {time.perf_counter() - t0:.0f} s")
        run_phases(port, sents, rate, args.scale, warm_s=args.warm_s)
    finally:
        serve.shutdown()
        ray.shutdown()


def server_stack() -> str:
    """uvicorn's version and what it runs on in this environment (the service's): httptools or
    h11, uvloop or asyncio's own loop (each picked when installed)."""
    from importlib import import_module
    from importlib.metadata import version

    def found(name: str) -> bool:
        try:
            import_module(name)
        except ImportError:
            return False
        return True

    http = "httptools" if found("httptools") else "h11"
    loop = "uvloop" if found("uvloop") else "asyncio's loop"
    return f"uvicorn {version('uvicorn')}, HTTP parser {http}, event loop {loop}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="en-fast")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--soak-min", type=float, default=0.0)
    ap.add_argument("--scale", type=float, default=1.0, help="requests and time limits times this (a quick check: 0.05)")
    ap.add_argument("--warm-s", type=float, default=10.0, help="seconds of warm-up before each measured phase")
    ap.add_argument("--ray", type=int, default=0, help="replicas on Ray Serve (local mode) instead of nertool serve")
    args = ap.parse_args()
    sents = sentences()
    print(server_stack())
    print(f"{len(sents)} sentences of 15-25 tokens (mean {sum(map(len, sents)) / len(sents):.1f})")
    rate = offline_rate(args.model, sents, args.threads, args.device, 5 * min(1.0, args.scale))
    print(f"offline, the network alone (Tagger.tag_sentences, batches of 256): {rate:,.0f} tokens/s")
    # the load generator's collector then walks only its own objects, not torch's and the model's
    # (a full collection over them stalls all 64 clients at once)
    gc.collect()
    gc.freeze()
    if args.ray:
        return on_ray(args, sents, rate)
    port = free_port()
    p = start(args.model, port, args, 256)
    try:
        run_phases(port, sents, rate, args.scale, [p.pid, *children(p.pid)], args.warm_s)
        if args.soak_min:
            before = rss_mb(p.pid)
            laps, curve = [], [round(before)]
            for _ in range(max(1, round(args.soak_min))):  # a minute at a time: the RSS after each
                laps.append(asyncio.run(phase(port, sents, 8, 10**9, 60 * args.soak_min / max(1, round(args.soak_min)))))
                curve.append(round(rss_mb(p.pid)))
            after = curve[-1]
            lat = {"requests": sum(r["requests"] for r in laps), "status": {},
                   "p50_ms (median of the minutes)": sorted(r["p50_ms"] for r in laps)[len(laps) // 2],
                   "p99_ms (worst minute)": max(r["p99_ms"] for r in laps),
                   "tokens_per_s": round(sum(r["tokens_per_s"] for r in laps) / len(laps))}
            for r in laps:
                for k, v in r["status"].items():
                    lat["status"][k] = lat["status"].get(k, 0) + v
            warm = curve[1]  # each process's RSS rises to a plateau while its first requests come in
            print(f"soak {args.soak_min:g} min at 8 clients: {json.dumps(lat)}; RSS {before:.0f} -> {after:.0f} MB "
                  f"({100 * (after - before) / before:+.1f}%), after the first minute {warm} -> {after} MB "
                  f"({100 * (after - warm) / warm:+.1f}%); RSS after each minute: {curve}")
    finally:
        print(f"service stopped with SIGTERM: exit code {stop(p)}")
    port = free_port()
    p = start(args.model, port, args, 16)
    try:
        r = asyncio.run(phase(port, sents, 256, int(4096 * args.scale), 60 * args.scale))
        print(f"256 clients, queue of 16: {json.dumps(r)}")
    finally:
        stop(p)


if __name__ == "__main__":
    main()
