"""Graceful overload: offer more messages than the API can take and see what it does with the excess.

    uv run python bench/overload.py [URL] --rate 500 [--sockets 1000] [--duration 20]

`--sockets` sockets in pairs (as bench/messaging.py) send `message:send` at `--rate` msg/s in all
for `--duration` s: give twice the sustainable rate (the highest rate at which messaging.py
delivers everything at a low p99 on this machine). A healthy server refuses what it cannot take
at once (`overloaded` acks) and keeps what it accepts fast. Meanwhile this process probes
`GET /health/live` every 100 ms, and, from a pair of its own, a `message:send` every 200 ms;
`--http-rate R` adds an open-loop authenticated `GET /users/me` at R/s (HTTP 200s and 503s).

Prints: accepted/refused/timed-out sends, p50/p99 ack latency of accepted sends and of refusals,
p99 send→receive of accepted messages, lost/duplicated accepted messages, the /health/live
latency during the load (p99, max), and the time to normal: seconds after the offered load
stopped until every probe (health and send) is answered within 200 ms. Targets (issue 8.3):
refusals within 100 ms, accepted p99 ≤ 200 ms, nothing accepted lost, health within 1 s
throughout, normal within 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing as mp
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import CpuWatch, find_listener_pid, host_port, summary_ms
from loadgen import Generator, Job, Result, raise_fd_limit
from messaging import _check_api, _get
from population import ensure_direct_conversations, ensure_users
from sockets import RawSocket

NORMAL_SECONDS = 0.2  # a probe answered faster than this is "normal"
REFUSED_METRIC = "chatty_admission_refused_total"


def refusal_counts(url: str, token: str) -> dict[str, float]:
    """The API's refusals so far by "kind/reason" (its /metrics, served with METRICS_TOKEN set; empty
    when unreadable)."""
    import urllib.request

    counts: dict[str, float] = {}
    if not token:
        return counts
    request = urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return counts
    for line in text.splitlines():
        if line.startswith(REFUSED_METRIC + "{"):
            labels, _, value = line.rpartition(" ")
            fields = dict(part.split("=", 1) for part in labels[labels.index("{") + 1:-1].split(","))
            key = f"{fields.get('kind', '').strip(chr(34))}/{fields.get('reason', '').strip(chr(34))}"
            counts[key] = counts.get(key, 0.0) + float(value)
    return counts


class RefusalGenerator(Generator):
    """The messaging load, also timing the acks that refused a send (kept in `result.refusals`)."""

    def __init__(self, job: Job) -> None:
        super().__init__(job)
        self.result.refusals = []  # type: ignore[attr-defined]

    async def _send_one(self, k: int, pair: int, sender: int) -> str | None:
        # This send's own ack decides (sends overlap: the shared error count also moves with others').
        started = time.time()
        code = await super()._send_one(k, pair, sender)
        if code == "overloaded":
            self.result.refusals.append(time.time() - started)  # type: ignore[attr-defined]
        return code


async def _sample_lag(lags: list[float], period: float = 0.01) -> None:
    """How late this generator's event loop wakes up: a late generator adds that to every ack it times."""
    while True:
        started = time.perf_counter()
        await asyncio.sleep(period)
        lags.append(time.perf_counter() - started - period)


async def _run(job: Job, ready: Any, go: Any, start_at: Any) -> Result:
    gen = RefusalGenerator(job)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        await gen.connect_all(session)
        ready.put(("connected", job.index))
        while not go[0].is_set():  # noqa: ASYNC110 (a multiprocessing.Event)
            await asyncio.sleep(0.05)
        if job.warmup:
            await gen.warm_up()
        ready.put(("warm", job.index))
        while not go[1].is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        cpu0, wall0 = time.process_time(), time.monotonic()
        lags: list[float] = []
        sampler = asyncio.create_task(_sample_lag(lags))
        await gen.send_all(start_at.value)
        await gen.drain()
        sampler.cancel()
        gen.result.lags = lags  # type: ignore[attr-defined]
        gen.result.cpu_cores = (time.process_time() - cpu0) / max(1e-9, time.monotonic() - wall0)
        await gen.close_all()
    return gen.result


def run_generator(job: Job, ready: Any, go: Any, start_at: Any, results: Any) -> None:
    """Entry point of a load-generator process."""
    raise_fd_limit()
    results.put(asyncio.run(_run(job, ready, go, start_at)))


@dataclass
class Probes:
    """What the probing thread saw: (time sent, latency s or None when failed, outcome)."""

    health: list[tuple[float, float | None]] = field(default_factory=list)
    sends: list[tuple[float, float | None, str]] = field(default_factory=list)
    reads: list[tuple[float, float, int]] = field(default_factory=list)  # (sent, latency, HTTP status; 0: failed)
    stop: threading.Event = field(default_factory=threading.Event)


async def _probe_health(session: aiohttp.ClientSession, url: str, probes: Probes) -> None:
    while not probes.stop.is_set():
        started = time.time()
        latency: float | None = None
        try:
            async with session.get(url + "/health/live", timeout=aiohttp.ClientTimeout(total=10)) as response:
                await response.read()
                latency = time.time() - started if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            pass
        probes.health.append((started, latency))
        await asyncio.sleep(max(0.0, started + 0.1 - time.time()))


async def _probe_sends(session: aiohttp.ClientSession, url: str, pair: tuple[dict[str, Any], dict[str, Any]],
                       conversation: str, probes: Probes) -> None:
    sock = RawSocket(session, url, {"token": pair[0]["token"]})
    await sock.connect()
    try:
        while not probes.stop.is_set():
            started = time.time()
            data = {"conversation_id": conversation, "client_msg_id": uuid.uuid4().hex, "body": "probe"}
            try:
                ack = await sock.call("message:send", data, wait=10)
                ok = isinstance(ack, dict) and ack.get("ok")
                outcome = "ok" if ok else str(ack.get("error", {}).get("code") if isinstance(ack, dict) else ack)
                probes.sends.append((started, time.time() - started if ok else None, outcome))
            except Exception as exc:
                probes.sends.append((started, None, type(exc).__name__))
            await asyncio.sleep(max(0.0, started + 0.2 - time.time()))
    finally:
        await sock.close()


async def _http_reads(session: aiohttp.ClientSession, url: str, token: str, rate: float, window: tuple[float, float],
                      probes: Probes) -> None:
    """Open-loop `GET /users/me` at `rate`/s during the load window (the HTTP side of admission)."""
    headers = {"Authorization": f"Bearer {token}"}

    async def one(started: float) -> None:
        try:
            async with session.get(url + "/api/v1/users/me", headers=headers,
                                   timeout=aiohttp.ClientTimeout(total=10)) as response:
                await response.read()
                probes.reads.append((started, time.time() - started, response.status))
        except (aiohttp.ClientError, TimeoutError):
            probes.reads.append((started, time.time() - started, 0))

    tasks: set[asyncio.Task[None]] = set()
    for k in itertools.count():
        due = window[0] + k / rate
        if due >= window[1] or probes.stop.is_set():
            break
        await asyncio.sleep(max(0.0, due - time.time()))
        task = asyncio.create_task(one(time.time()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=15)


def start_probes(url: str, pair: tuple[dict[str, Any], dict[str, Any]], conversation: str, http_rate: float,
                 window: tuple[float, float]) -> tuple[Probes, threading.Thread]:
    probes = Probes()

    async def main() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            await asyncio.gather(_probe_health(session, url, probes),
                                 _probe_sends(session, url, pair, conversation, probes),
                                 *([_http_reads(session, url, pair[1]["token"], http_rate, window, probes)]
                                   if http_rate > 0 else []))

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    return probes, thread


def normal_latency(probes: Probes, load_start: float) -> float:
    """What "normal" is: NORMAL_SECONDS, or twice the slowest probe before the load if more (a busy machine)."""
    before = [lat for t, lat in probes.health if t < load_start] + [lat for t, lat, _ in probes.sends if t < load_start]
    return max([NORMAL_SECONDS] + [2 * x for x in before if x is not None])


def time_to_normal(probes: Probes, load_end: float, normal: float) -> float:
    """Seconds after `load_end` until every probe sent from then on was answered within `normal` s
    (nan when that never happened before the probes stopped)."""
    samples = sorted([(t, lat) for t, lat in probes.health] + [(t, lat) for t, lat, _ in probes.sends])
    last_bad = load_end
    for t, lat in samples:
        if t >= load_end and (lat is None or lat > normal):
            last_bad = t
    after = [t for t, _ in samples if t > last_bad]
    return (after[0] - load_end) if after else float("nan")


def _merge(results: list[Result], attr: str) -> dict[str, int]:
    merged: dict[str, int] = {}
    for r in results:
        for k, v in getattr(r, attr).items():
            merged[k] = merged.get(k, 0) + v
    return merged


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", nargs="?", default="http://127.0.0.1:8000")
    p.add_argument("--sockets", type=int, default=1000, help="sockets sending (even)")
    p.add_argument("--rate", type=float, default=500.0, help="offered messages per second, all pairs together")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of sending (at most 60)")
    p.add_argument("--procs", type=int, default=2, help="load-generator processes")
    p.add_argument("--http-rate", type=float, default=0.0, help="also GET /users/me at this rate (open loop)")
    p.add_argument("--settle", type=float, default=8.0, help="seconds of probing after the load stops")
    p.add_argument("--pid", type=int, help="API process id (default: the listener on the URL's port)")
    p.add_argument("--metrics-token", default=os.environ.get("METRICS_TOKEN", ""),
                   help="the API's METRICS_TOKEN (default: $METRICS_TOKEN), to count refusals by bound")
    return p


def main() -> None:
    args = _parser().parse_args()
    raise_fd_limit()
    url = args.url.rstrip("/")
    duration = min(max(args.duration, 1.0), 60.0)
    asyncio.run(_check_api(url))
    api_pid = args.pid or find_listener_pid(host_port(url)[1])
    count = max(2, args.sockets - args.sockets % 2)
    users = asyncio.run(ensure_users(url, count + 2))
    pairs = [(users[i], users[i + 1]) for i in range(0, count + 2, 2)]
    conversations = asyncio.run(ensure_direct_conversations(url, pairs))
    peers = [({"token": u["token"]}, u["id"]) for u in users[:count]]
    print(f"API {url}, pid {api_pid}; {psutil.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"offering {args.rate:.0f} msg/s from {count} sockets for {duration:.0f} s", flush=True)

    ctx = mp.get_context("spawn")
    ready, results, start_at = ctx.Queue(), ctx.Queue(), ctx.Value("d", 0.0)
    go = (ctx.Event(), ctx.Event())
    npairs = count // 2
    procs = max(1, min(args.procs, npairs))
    bounds = [round(i * npairs / procs) for i in range(procs + 1)]
    jobs = [Job(index=i, base_url=url, client="raw", peers=peers[2 * lo:2 * hi], conversations=conversations[lo:hi],
                rate=args.rate * (hi - lo) / npairs, duration=duration)
            for i, (lo, hi) in enumerate(itertools.pairwise(bounds))]
    workers = [ctx.Process(target=run_generator, args=(job, ready, go, start_at, results), daemon=True)
               for job in jobs]
    for w in workers:
        w.start()
    probes, thread = None, None
    refused_before: dict[str, float] = {}
    refused_after: dict[str, float] = {}
    try:
        for _ in workers:
            _get(ready, time.monotonic() + 600, "connections", workers)
        go[0].set()
        for _ in workers:
            _get(ready, time.monotonic() + 600, "the warm-up", workers)
        start_at.value = time.time() + 4.0  # probes for 3 s before the load: the quiet baseline
        load_end = start_at.value + duration
        probes, thread = start_probes(url, pairs[-1], conversations[-1], args.http_rate, (start_at.value, load_end))
        time.sleep(3)
        cpu = CpuWatch([api_pid]).start() if api_pid else None
        refused_before = refusal_counts(url, args.metrics_token)
        go[1].set()
        print(f"sending for {duration:.0f} s…", flush=True)
        time.sleep(max(0.0, load_end - time.time()))
        cores = cpu.stop() if cpu else float("nan")
        time.sleep(args.settle)
        refused_after = refusal_counts(url, args.metrics_token)
        probes.stop.set()
        collected = [_get(results, time.monotonic() + 120, "results", workers) for _ in workers]
    finally:
        for w in workers:
            w.join(10)
            if w.is_alive():
                w.terminate()
        if thread is not None:
            thread.join(15)
    report(collected, probes, start_at.value, load_end, cores, args.rate, duration)
    reasons = {k: v - refused_before.get(k, 0.0) for k, v in refused_after.items() if v > refused_before.get(k, 0.0)}
    print("refusals by bound (the API's /metrics, kind/reason): "
          + (", ".join(f"{k} {v:.0f}" for k, v in sorted(reasons.items())) or "none")
          + ("" if args.metrics_token else " (not read: no --metrics-token)"))


def report(results: list[Result], probes: Probes | None, load_start: float, load_end: float, cores: float,
           rate: float, duration: float) -> None:
    sent = sum(r.sent for r in results)
    accepted = sum(r.acked for r in results)
    errors = _merge(results, "ack_errors")
    refused = errors.pop("overloaded", 0)
    ack = summary_ms([x for r in results for x in r.ack_latencies])
    refusal = summary_ms([x for r in results for x in getattr(r, "refusals", [])])
    lat = summary_ms([x for r in results for x in r.latencies])
    lost, dups = sum(r.lost for r in results), sum(r.duplicates for r in results)
    print(f"offered {sent} ({rate:.0f}/s): accepted {accepted} ({accepted / duration:.0f}/s), refused {refused}, "
          f"other failures {errors or 'none'}")
    print(f"accepted: ack p50 {ack['p50']:.0f} ms p99 {ack['p99']:.0f} ms; send→receive p50 {lat['p50']:.0f} ms "
          f"p99 {lat['p99']:.0f} ms max {lat['max']:.0f} ms; lost {lost}, duplicates {dups}")
    print(f"refused: ack p50 {refusal['p50']:.0f} ms p99 {refusal['p99']:.0f} ms max {refusal['max']:.0f} ms")
    print(f"API CPU during the load: {cores:.2f} cores; load average {os.getloadavg()[0]:.2f}")
    lags = summary_ms([x for r in results for x in getattr(r, "lags", [])])
    generators = sum(getattr(r, "cpu_cores", 0.0) for r in results)
    print(f"load generator: {len(results)} processes, {generators:.2f} cores; their event loops ran late "
          f"p50 {lags['p50']:.0f} ms p99 {lags['p99']:.0f} ms max {lags['max']:.0f} ms (a late generator adds "
          "that to the ack latencies above)")
    normal = float("nan")
    if probes is not None:
        during = [lat for t, lat in probes.health if load_start <= t < load_end]
        failed = sum(1 for x in during if x is None)
        health = summary_ms([x for x in during if x is not None])
        print(f"/health/live during the load: p50 {health['p50']:.0f} ms p99 {health['p99']:.0f} ms "
              f"max {health['max']:.0f} ms, {failed} failed of {len(during)}")
        sends = [(lat, outcome) for t, lat, outcome in probes.sends if load_start <= t < load_end]
        outcomes: dict[str, int] = {}
        for _, outcome in sends:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        print(f"probe sends during the load: {outcomes}")
        if probes.reads:
            statuses: dict[int, int] = {}
            for _, _, status in probes.reads:
                statuses[status] = statuses.get(status, 0) + 1
            ok = summary_ms([x for _, x, status in probes.reads if status == 200])
            busy = summary_ms([x for _, x, status in probes.reads if status == 503])
            print(f"HTTP GET /users/me during the load: statuses {statuses}; 200 p99 {ok['p99']:.0f} ms, "
                  f"503 p99 {busy['p99']:.0f} ms")
        threshold = normal_latency(probes, load_start)
        normal = time_to_normal(probes, load_end, threshold)
        print(f"time to normal after the load stopped: {normal:.2f} s (every probe answered within "
              f"{1000 * threshold:.0f} ms from then on: {1000 * NORMAL_SECONDS:.0f} ms or twice the slowest "
              "probe before the load)")
        health_max = health["max"] if not failed else float("inf")
    else:
        health_max = float("inf")
    met = {"refusals ≤ 100 ms (p99)": refused == 0 or refusal["p99"] <= 100,
           "accepted p99 ≤ 200 ms": lat["p99"] <= 200, "nothing accepted lost": lost == 0 and dups == 0,
           "health ≤ 1 s": health_max <= 1000, "normal within 2 s": normal <= 2.0}
    print("targets: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in met.items()))


if __name__ == "__main__":
    main()
