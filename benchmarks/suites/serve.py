"""Benchmark: `llmrec serve` under load against offline `Recommender.recommend`, in one run.

A real server process on localhost (`llmrec serve RUN --max-batch B`) and an async HTTP client
(httpx): at each concurrency level, that many clients send POST /recommend for test users' histories
back to back until the level's request budget or time bound is spent; per level: requests, errors,
p50/p95/p99 latency and users/s. Then, in this process, `Recommender.recommend` on the same
histories in batches of B (what the server's batches are at best). Writes results/serve/load.json;
with `--explain`, every request asks for reasons too (results/serve/load-explain.json).

    python -m benchmarks serve --run runs/quickstart/run
    python -m benchmarks serve --run RUN --explain -k 5 --levels 1 --requests 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.common import record
from llmrec.generate import Recommender
from llmrec.run_dir import RunDir


def peak_memory_mib(pid: int) -> float | None:
    """The process's peak resident memory (Linux VmHWM), in MiB."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return None
    line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
    return round(int(line.split()[1]) / 1024, 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def level(
    url: str, histories: list[list[str]], concurrency: int, budget: int, bound_s: float, body: dict
) -> dict:
    latencies: list[float] = []
    errors = 0
    next_request = 0
    t0 = time.perf_counter()

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal next_request, errors
        while next_request < budget and time.perf_counter() - t0 < bound_s:
            history = histories[next_request % len(histories)]
            next_request += 1
            start = time.perf_counter()
            try:
                response = await http.post("/recommend", json={"history": history, **body})
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    q = (
        statistics.quantiles(latencies, n=100)
        if len(latencies) > 1
        else [latencies[0] if latencies else 0] * 99
    )
    return {
        "concurrency": concurrency,
        "requests": len(latencies) + errors,
        "errors": errors,
        "p50_ms": round(1000 * q[49], 1),
        "p95_ms": round(1000 * q[94], 1),
        "p99_ms": round(1000 * q[98], 1),
        "users_per_s": round(len(latencies) / wall, 2),
        "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/quickstart/run")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16, 64, 200])
    parser.add_argument("--requests", type=int, default=400, help="request budget per level")
    parser.add_argument("--bound-s", type=float, default=120, help="time bound per level")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--explain", action="store_true", help="ask for a reason with every item")
    args = parser.parse_args(argv)
    body = {"k": args.k, "explain": args.explain}

    run = RunDir(args.run)
    split = run.load_split()
    histories = split.histories(split.eval_users("test"), "test")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "llmrec",
        "serve",
        args.run,
        "--port",
        str(port),
        "--max-batch",
        str(args.max_batch),
    ]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.5)
        asyncio.run(level(url, histories, 4, 16, 60, body))  # warm-up (loads the explainer too)
        levels = []
        for concurrency in args.levels:
            result = asyncio.run(level(url, histories, concurrency, args.requests, args.bound_s, body))
            print(result, flush=True)
            levels.append(result)
        peak_rss = peak_memory_mib(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)

    rec = Recommender.from_run(run.path)
    rec.cfg.batch_size = args.max_batch
    sample = histories[: args.requests]
    rec.recommend(sample[:4], k=args.k)  # warm-up
    t0 = time.perf_counter()
    rec.recommend(sample, k=args.k)
    offline = len(sample) / (time.perf_counter() - t0)
    at64 = next((lv["users_per_s"] for lv in levels if lv["concurrency"] == 64), None)
    out = {
        "what": f"POST /recommend (k {args.k}{', explain' if args.explain else ''}, one test user's history "
        "each) from N concurrent clients, localhost, against offline Recommender.recommend (the LLM alone, "
        "no reasons) on the same histories in batches of max_batch, one run",
        "explain": args.explain,
        "k": args.k,
        "run": args.run,
        "id_scheme": json.loads((run.path / "item_ids.json").read_text())["scheme"],
        "max_batch": args.max_batch,
        "server_peak_rss_mib": peak_rss,
        "levels": levels,
        "offline_users_per_s": round(offline, 2),
        "served_over_offline_at_64": round(at64 / offline, 3) if at64 else None,
    }
    print(json.dumps(out, indent=2))
    summary = {
        "offline users/s": out["offline_users_per_s"],
        "served / offline at 64": out["served_over_offline_at_64"],
    }
    if args.explain:
        summary["p50 ms with reasons, 1 client"] = levels[0]["p50_ms"]
    name = "load-explain" if args.explain else "load"
    record("serve", name, out, summary, dataset="ml100k", variant=out["id_scheme"])


if __name__ == "__main__":  # also: python -m benchmarks SUITE
    main()
