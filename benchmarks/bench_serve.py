"""Load check for ``reinforge serve`` on loopback (``python -m benchmarks.bench_serve``); not a test.

Starts a server (no job workers), then fires ``--concurrency`` (default 200) simultaneous requests at
``/v1/fine_tuning/alpha/graders/run`` (string_check) and at ``/v1/chat/completions`` (the built-in tiny
model, ``--max-tokens`` tokens each), and reports p50/p99 latency, throughput and the error count per
endpoint. Each measurement is one JSON line; a table follows. Done when errors == 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

GRADER = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile of ``xs`` (q in [0, 100])."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


async def fire(url: str, key: str, path: str, bodies: list[dict]) -> dict:
    """Send all bodies at once; return latency percentiles (ms), throughput and errors."""
    limits = httpx.Limits(max_connections=len(bodies) + 10, max_keepalive_connections=len(bodies) + 10)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300, limits=limits
    ) as client:

        async def one(body: dict) -> tuple[float, bool]:
            t0 = time.perf_counter()
            try:
                r = await client.post(path, json=body)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            return time.perf_counter() - t0, ok

        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(b) for b in bodies))
        wall = time.perf_counter() - t0
    lat = [r[0] * 1000 for r in results]
    return {
        "endpoint": path,
        "requests": len(bodies),
        "errors": sum(not r[1] for r in results),
        "p50_ms": round(percentile(lat, 50), 1),
        "p99_ms": round(percentile(lat, 99), 1),
        "mean_ms": round(statistics.mean(lat), 1),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(bodies) / wall, 1),
    }


def start(data_dir: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reinforge.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--workers",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--model", default="tiny:addition:1m")
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        key = subprocess.run(
            [
                sys.executable,
                "-m",
                "reinforge.cli",
                "keys",
                "create",
                "--name",
                "bench",
                "--data-dir",
                str(data),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
        proc = start(data, args.port)
        url = f"http://127.0.0.1:{args.port}/v1"
        try:
            n = args.concurrency
            grader_bodies = [
                {"grader": GRADER, "model_sample": str(i % 7), "item": {"answer": str(i % 5)}}
                for i in range(n)
            ]
            chat_bodies = [
                {
                    "model": args.model,
                    "max_tokens": args.max_tokens,
                    "temperature": 1.0,
                    "messages": [{"role": "user", "content": f"{10 + i % 89}+{10 + (i * 7) % 89}"}],
                }
                for i in range(n)
            ]
            asyncio.run(fire(url, key, "/chat/completions", chat_bodies[:2]))  # load the model first
            asyncio.run(fire(url, key, "/fine_tuning/alpha/graders/run", grader_bodies[:2]))
            results = [
                asyncio.run(fire(url, key, "/fine_tuning/alpha/graders/run", grader_bodies)),
                asyncio.run(fire(url, key, "/chat/completions", chat_bodies)),
            ]
        finally:
            proc.terminate()
            proc.wait(15)
    for r in results:
        print(json.dumps(r))
    print(f"\n{'endpoint':34} {'n':>5} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for r in results:
        print(
            f"{r['endpoint']:34} {r['requests']:>5} {r['errors']:>6} {r['p50_ms']:>8} {r['p99_ms']:>8} "
            f"{r['requests_per_s']:>8}"
        )
    return results


if __name__ == "__main__":
    main()
