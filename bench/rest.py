"""REST load: authenticated `GET /api/v1/users/me` at fixed concurrency for a fixed time.

    uv run python bench/rest.py [URL] [--concurrency 32] [--duration 20] [--warmup 3] [--procs 1]
    uv run python bench/rest.py [URL] --compare     # /health/live first, then /users/me: CPU ratio
    uv run python bench/rest.py [URL] --compare --path '/api/v1/users/{other}'   # another user's profile

Signs up its own user, warms up, then keeps `concurrency` requests in flight over keep-alive
connections (aiohttp) for `duration` seconds and prints req/s, errors and p50/p95/p99 latency.
It also prints the CPU the load generator and the API process used (the API found by its port,
or --pid), so a saturated generator is visible: on a 2-core machine the generator, the API,
PostgreSQL and Redis share the cores. `--procs` splits the connections over several processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import aiohttp
import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import CpuWatch, closed_loop, find_listener_pid, host_port, signup, summary_ms

MAX_DURATION = 300.0
DEFAULT_PATH = "/api/v1/users/me"
BASELINE_PATH = "/health/live"


async def _load(url: str, token: str, concurrency: int, warmup: float, duration: float
                ) -> tuple[int, int, list[float], dict[str, int]]:
    """Run the workers; (ok, errors, latencies of measured requests, error kinds)."""
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False, enable_cleanup_closed=True)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def send(_: int) -> str | None:
            async with session.get(url, headers=headers) as response:
                await response.read()
                return None if response.status == 200 else f"http_{response.status}"

        result = await closed_loop(send, concurrency, warmup, duration)
    return result.ok, result.errors, result.latencies, result.kinds


def _run_process(url: str, token: str, concurrency: int, warmup: float, duration: float
                 ) -> tuple[int, int, list[float], dict[str, int], float]:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    before = _cpu_of_self()
    result = asyncio.run(_load(url, token, concurrency, warmup, duration))
    return (*result, _cpu_of_self() - before)


def _cpu_of_self() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


async def _token(url: str) -> tuple[str, str]:
    """A fresh user's access token, and the id of another fresh user (for `{other}` in --path)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.get(url + "/health/ready") as response:
            if response.status != 200:
                raise SystemExit(f"{url} is not ready: {response.status} {await response.text()}")
        me, other = [await signup(session, url, "benchrest") for _ in range(2)]
        return me["access_token"], other["user"]["id"]


def _measure(args: argparse.Namespace, url: str, path: str, token: str, duration: float) -> float:
    """One closed-loop run on `path`; prints its figures and returns the API CPU µs per request."""
    procs = max(1, min(args.procs, args.concurrency))
    api_pid = args.pid or find_listener_pid(host_port(url)[1])
    api_cpu = CpuWatch([api_pid]) if api_pid else None
    shares = [args.concurrency // procs + (i < args.concurrency % procs) for i in range(procs)]
    print(f"GET {path} on {url}: {args.concurrency} connections in {procs} process(es), "
          f"{args.warmup:.0f} s warm-up, {duration:.0f} s measured; API pid {api_pid or 'unknown'}", flush=True)

    with ProcessPoolExecutor(procs) as pool:
        futures = [pool.submit(_run_process, url + path, token, share, args.warmup, duration)
                   for share in shares]
        time.sleep(args.warmup)
        if api_cpu:
            api_cpu.start()
        results = [f.result(timeout=args.warmup + duration + 60) for f in futures]
    api_cores = api_cpu.stop() if api_cpu else float("nan")

    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    latencies = [x for r in results for x in r[2]]
    kinds: dict[str, int] = {}
    for r in results:
        for k, v in r[3].items():
            kinds[k] = kinds.get(k, 0) + v
    generator_cores = sum(r[4] for r in results) / (args.warmup + duration)
    s = summary_ms(latencies)
    rate = ok / duration
    print(f"requests: {ok} ok, {errors} errors{' ' + str(kinds) if kinds else ''}")
    print(f"throughput: {rate:,.0f} req/s")
    print(f"latency ms: p50 {s['p50']:.2f}  p95 {s['p95']:.2f}  p99 {s['p99']:.2f}  max {s['max']:.2f}")
    per_request = api_cores * duration / max(1, ok + errors) * 1e6
    print(f"cpu (cores): API process {api_cores:.2f} ({per_request:.0f} µs per request), "
          f"load generator {generator_cores:.2f}; machine has {psutil.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    verdict = "met" if rate >= 1500 and s["p99"] <= 20 and errors == 0 else "NOT met"
    print(f"target ≥ 1500 req/s, p99 ≤ 20 ms, no errors: {verdict}", flush=True)
    return per_request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8000")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20.0, help=f"seconds (≤ {MAX_DURATION:.0f})")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds")
    parser.add_argument("--procs", type=int, default=1, help="load-generator processes")
    parser.add_argument("--path", default=DEFAULT_PATH,
                        help="e.g. /health/live, /api/v1/conversations/, /api/v1/users/{other} (another fresh user)")
    parser.add_argument("--compare", action="store_true",
                        help=f"run {BASELINE_PATH} first, then --path, and print the CPU-per-request ratio")
    parser.add_argument("--pid", type=int, help="API process id (default: the listener on the URL's port)")
    args = parser.parse_args()
    url = args.url.rstrip("/")
    duration = min(max(args.duration, 1.0), MAX_DURATION)

    token, other = asyncio.run(_token(url))
    args.path = args.path.replace("{other}", other)
    if not args.compare:
        _measure(args, url, args.path, token, duration)
        return
    baseline = _measure(args, url, BASELINE_PATH, token, duration)
    measured = _measure(args, url, args.path, token, duration)
    ratio = measured / baseline
    print(f"API CPU per request: {args.path} {measured:.0f} µs / {BASELINE_PATH} {baseline:.0f} µs = {ratio:.2f}x; "
          f"target ≤ 3x: {'met' if ratio <= 3 else 'NOT met'}")


if __name__ == "__main__":
    main()
