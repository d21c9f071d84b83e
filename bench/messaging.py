"""Realtime load: authenticated sockets in pairs exchanging messages, against a bare relay baseline.

    uv run python bench/messaging.py [URL] [--sockets 2000] [--rate 500] [--duration 30]
    uv run python bench/messaging.py [URL] --idle [10000] [--hold 30]

Load mode: `--sockets` sockets (one user each) in pairs sharing a direct conversation send
`message:send` (acked) at `--rate` messages/s in total for `--duration` s; the partner's socket
must receive each acked message once as `message:new`. Prints delivered/sent, losses,
duplicates, p50/p95/p99 send→receive latency (send time in the body, measured at the
receiver) and the API process's RSS growth per connected socket. Each pair first exchanges one uncounted message
each way (`--no-warmup` skips it), so per-user caches (privacy decisions) are warm. Then the same load runs
against a bare python-socketio relay (bench/relay_app.py: no auth, no database, no Redis)
started here on a free port, and our p99 is divided by the relay's.

Idle mode: `--idle M` sockets stay connected for `--hold` s; prints RSS per socket and the
API process's CPU while idle.

Load comes from several processes (`--procs`), each an asyncio loop of light raw Engine.IO
clients (`--client raw`) or python-socketio AsyncClients (`--client sio`). Users are signed
up once and cached (bench/population.py): run the bench API with ACCESS_TOKEN_TTL=86400 and
permissive sign-in limits. The API pid comes from --pid or from the port of the URL (psutil).
Everything binds 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import multiprocessing as mp
import os
import queue
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import CpuWatch, find_listener_pid, find_listener_pids, free_port, host_port, summary_ms
from loadgen import Job, Result, raise_fd_limit, run_process
from population import ensure_direct_conversations, ensure_users

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_SOCKETS, MAX_DURATION, MAX_HOLD = 20_000, 300.0, 600.0


@dataclass
class Phase:
    """What a run measured."""

    name: str
    sockets: int
    results: list[Result]
    rss_before: int
    rss_connected: int
    cpu_cores: float
    connect_seconds: float
    machine_cores: float = float("nan")  # every process on the machine, same window
    cpu_seconds: float = float("nan")  # CPU the server's processes used in the measured window
    worker_cpu_seconds: float = float("nan")  # the --worker-pid processes (and children), same window
    stall_after_close: float = float("nan")  # s until the server answered HTTP once the sockets closed
    pids: tuple[int, ...] = ()
    machine: Any = None  # --machine: a running machine_cpu.MachineWatch (stopped by the caller)

    def total(self, attr: str) -> int:
        return sum(getattr(r, attr) for r in self.results)

    def failures(self, attr: str) -> dict[str, int]:
        merged: dict[str, int] = {}
        for r in self.results:
            for k, v in getattr(r, attr).items():
                merged[k] = merged.get(k, 0) + v
        return merged

    @property
    def connected(self) -> int:
        return self.total("connected")

    def cpu_per_message_us(self, seconds: float | None = None) -> float:
        """CPU µs per message received by its partner (the server's, or `seconds` spent by others);
        messages whose ack came too late count too: the server did their work."""
        delivered = sum(len(r.latencies) for r in self.results)
        used = self.cpu_seconds if seconds is None else seconds
        return 1e6 * used / delivered if delivered else float("nan")

    @property
    def rss_per_socket(self) -> float:
        return (self.rss_connected - self.rss_before) / max(1, self.connected)

    def latency(self) -> dict[str, float]:
        return summary_ms([x for r in self.results for x in r.latencies])

    def ack_latency(self) -> dict[str, float]:
        return summary_ms([x for r in self.results for x in r.ack_latencies])

    def timeline(self, step: float = 5.0) -> list[float]:
        """p99 latency (ms) of the messages sent in each `step`-second slice of the run."""
        samples = [(t, x) for r in self.results for t, x in zip(r.sent_at, r.latencies, strict=True)]
        if not samples:
            return []
        start = min(t for t, _ in samples)
        slices: dict[int, list[float]] = {}
        for t, x in samples:
            slices.setdefault(int((t - start) // step), []).append(x)
        return [summary_ms(slices.get(i, []))["p99"] for i in range(max(slices) + 1)]


def _rss(pids: list[int]) -> int:
    """The RSS of the API's processes together (several with `chatty api --workers N`)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(pid).memory_info().rss
    return total


def _get(q: Any, deadline: float, what: str, procs: list[Any]) -> Any:
    while True:
        try:
            return q.get(timeout=1)
        except queue.Empty:
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}") from None
            if not any(p.is_alive() for p in procs):
                raise RuntimeError(f"load generators exited before {what}") from None


def run_phase(name: str, base_url: str, peers: list[tuple[dict[str, Any], str]], conversations: list[str],
              args: argparse.Namespace, api_pids: list[int], hold: float = 0.0) -> Phase:
    """Spread the pairs over processes, connect, then send (or hold idle) and collect results."""
    ctx = mp.get_context("spawn")
    ready, results, start_at = ctx.Queue(), ctx.Queue(), ctx.Value("d", 0.0)
    go = (ctx.Event(), ctx.Event())  # warm up; start sending
    pairs = len(peers) // 2
    procs = max(1, min(args.procs, pairs or 1))
    bounds = [round(i * pairs / procs) for i in range(procs + 1)]
    jobs = [Job(index=i, base_url=base_url, client=args.client, peers=peers[2 * lo:2 * hi],
                conversations=conversations[lo:hi], rate=args.rate * (hi - lo) / max(1, pairs),
                duration=args.duration, deflate=not args.no_deflate, warmup=not args.no_warmup)
            for i, (lo, hi) in enumerate(itertools.pairwise(bounds))]
    rss_before = _rss(api_pids)
    print(f"[{name}] connecting {len(peers)} sockets from {procs} processes ({args.client} client)…", flush=True)
    started = time.monotonic()
    workers = [ctx.Process(target=run_process, args=(job, ready, go, start_at, results, hold), daemon=True)
               for job in jobs]
    for w in workers:
        w.start()
    try:
        for _ in workers:
            _get(ready, time.monotonic() + 600, "connections", workers)
        connect_seconds = time.monotonic() - started
        time.sleep(3)  # let the server settle (allocations, first pings)
        rss_connected = _rss(api_pids)
        go[0].set()
        for _ in workers:
            _get(ready, time.monotonic() + 600, "the warm-up", workers)
        cpu = CpuWatch(api_pids).start() if api_pids else None
        worker_cpu = _worker_watch(args)
        machine_watch = _machine_watch(args, api_pids)
        machine, cpu_started = psutil.cpu_times(), time.monotonic()
        start_at.value = time.time() + 1.0
        go[1].set()
        print(f"[{name}] " + (f"holding for {hold:.0f} s…" if hold > 0 else f"sending for {args.duration:.0f} s…"),
              flush=True)
        if hold > 0:  # measure the idle window only, not the closing of the sockets after it
            time.sleep(max(0.0, start_at.value + hold - 0.5 - time.time()))
            cores, machine_cores = cpu.stop() if cpu else float("nan"), _busy_cores(machine)
            cpu_elapsed = time.monotonic() - cpu_started
        window = hold if hold > 0 else args.duration + 30
        collected = [_get(results, time.monotonic() + window + 120, "results", workers) for _ in workers]
        if hold <= 0:
            cores, machine_cores = cpu.stop() if cpu else float("nan"), _busy_cores(machine)
            cpu_elapsed = time.monotonic() - cpu_started
        worker_seconds = worker_cpu.stop() * (time.monotonic() - cpu_started) if worker_cpu else float("nan")
        if machine_watch is not None:
            machine_watch.stop()
        stall = _time_to_answer(base_url)
    finally:
        for w in workers:
            w.join(10)
            if w.is_alive():
                w.terminate()
    return Phase(name, len(peers), sorted(collected, key=lambda r: r.index), rss_before, rss_connected,
                 cores, connect_seconds, machine_cores, stall_after_close=stall, cpu_seconds=cores * cpu_elapsed,
                 worker_cpu_seconds=worker_seconds, pids=tuple(api_pids), machine=machine_watch)


def _worker_watch(args: argparse.Namespace) -> CpuWatch | None:
    """CPU of the worker processes given with --worker-pid, their children included."""
    pids: list[int] = []
    for pid in getattr(args, "worker_pid", None) or []:
        with contextlib.suppress(psutil.Error):
            pids += [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    return CpuWatch(pids).start() if pids else None


def _machine_watch(args: argparse.Namespace, api_pids: list[int]) -> Any:
    """--machine: sample every process on a message's path (bench/machine_cpu.py)."""
    if not getattr(args, "machine", False):
        return None
    from machine_cpu import MachineWatch

    return MachineWatch(api_pids, args.worker_pid or [], args.database_url, args.redis_url).start()


def _time_to_answer(base_url: str) -> float:
    """Seconds until the server answers an HTTP request (it may be busy with the disconnects)."""
    import urllib.request

    started = time.monotonic()
    with contextlib.suppress(OSError):
        urllib.request.urlopen(base_url + "/socket.io/?EIO=4&transport=polling", timeout=120).close()
    return time.monotonic() - started


def _busy_cores(before: Any) -> float:
    """Cores the whole machine kept busy since `before` (psutil.cpu_times())."""
    after = psutil.cpu_times()
    idle = (after.idle + getattr(after, "iowait", 0)) - (before.idle + getattr(before, "iowait", 0))
    total = sum(after) - sum(before)
    return psutil.cpu_count() * (1 - idle / total) if total > 0 else float("nan")


def print_phase(phase: Phase, *, idle: bool = False) -> None:
    failures = phase.failures("connect_failures")
    warm = phase.failures("warmup_failures")
    print(f"[{phase.name}] connected {phase.connected}/{phase.sockets} in {phase.connect_seconds:.1f} s"
          + (f", failures {failures}" if failures else "") + (f", warm-up failures {warm}" if warm else ""))
    if phase.rss_before:
        print(f"[{phase.name}] API RSS {phase.rss_before / 2**20:.0f} MiB → {phase.rss_connected / 2**20:.0f} MiB: "
              f"{phase.rss_per_socket / 1024:.1f} KiB per connected socket")
    print(f"[{phase.name}] after the sockets closed, the server answered HTTP within {phase.stall_after_close:.2f} s")
    if idle:
        print(f"[{phase.name}] server CPU while idle: {100 * phase.cpu_cores:.1f} % of a core (load generators "
              f"{100 * sum(r.cpu_cores for r in phase.results):.1f} %, whole machine "
              f"{100 * phase.machine_cores:.0f} %); "
              f"sockets dropped during the hold: {phase.total('disconnected')}")
        return
    sent, acked, delivered = phase.total("sent"), phase.total("acked"), phase.total("delivered")
    errors = phase.failures("ack_errors")
    lat, ack = phase.latency(), phase.ack_latency()
    print(f"[{phase.name}] sent {sent}, acked ok {acked}" + (f", ack errors {errors}" if errors else ""))
    print(f"[{phase.name}] delivered {delivered}/{acked} acked, lost {phase.total('lost')}, "
          f"duplicates {phase.total('duplicates')}, echoes to sender {phase.total('echoes')}, "
          f"unexpected events {phase.total('unexpected')}, sockets dropped {phase.total('disconnected')}")
    print(f"[{phase.name}] send→receive ms: p50 {lat['p50']:.1f}  p95 {lat['p95']:.1f}  p99 {lat['p99']:.1f}  "
          f"max {lat['max']:.1f};  ack ms: p50 {ack['p50']:.1f}  p99 {ack['p99']:.1f}")
    print(f"[{phase.name}] p99 ms per 5 s of sending: " + " ".join(f"{x:.0f}" for x in phase.timeline()))
    lag = max((r.send_lag for r in phase.results), default=0.0)
    generators = sum(r.cpu_cores for r in phase.results)
    print(f"[{phase.name}] CPU cores: server {phase.cpu_cores:.2f}, load generators {generators:.2f}, whole "
          f"machine {phase.machine_cores:.2f} of {psutil.cpu_count()}; worst send-schedule lag {1000 * lag:.0f} ms")
    worker = phase.worker_cpu_seconds
    print(f"[{phase.name}] server CPU per received message: {phase.cpu_per_message_us():.0f} µs "
          f"({phase.cpu_seconds:.1f} CPU s of {len(phase.pids)} process(es))"
          + ("" if worker != worker else f"; worker processes: {phase.cpu_per_message_us(worker):.0f} µs"))


def start_relay(ws: str = "auto", ws_ping: float = 20.0) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "relay_app.py"), "--port", str(port), "--ws", ws,
                             "--ws-ping", str(ws_ping)],
                            stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if find_listener_pid(port):
            return proc, url
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the relay did not start")


def relay_peers(count: int) -> tuple[list[tuple[dict[str, Any], str]], list[str]]:
    keys = [uuid.uuid4().hex for _ in range(count)]
    peers = [({"user": keys[i], "partner": keys[i ^ 1]}, keys[i]) for i in range(count)]
    return peers, [uuid.uuid4().hex for _ in range(count // 2)]


async def _check_api(url: str) -> None:
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
                session.get(url + "/health/ready") as response):
        if response.status != 200:
            raise SystemExit(f"{url} is not ready: {response.status} {await response.text()}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", nargs="?", default="http://127.0.0.1:8000")
    p.add_argument("--sockets", type=int, default=2000, help="sockets in load mode (even)")
    p.add_argument("--rate", type=float, default=500.0, help="messages per second, all pairs together")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of sending")
    p.add_argument("--idle", type=int, nargs="?", const=10_000, help="idle mode with M sockets (default 10000)")
    p.add_argument("--hold", type=float, default=30.0, help="seconds to hold idle sockets")
    p.add_argument("--procs", type=int, help="load-generator processes (default 2, idle mode 4)")
    p.add_argument("--client", choices=["raw", "sio"], default="raw")
    p.add_argument("--no-warmup", action="store_true",
                   help="skip the uncounted warm-up round (one message each way per pair)")
    p.add_argument("--no-deflate", action="store_true", help="raw client: do not offer permessage-deflate")
    p.add_argument("--pid", type=int, action="append",
                   help="an API process id, repeatable (default: every process listening on the URL's port)")
    p.add_argument("--users", type=int, help="idle mode: sign in at most this many users, several sockets each")
    p.add_argument("--worker-pid", type=int, action="append",
                   help="a worker process whose CPU (children included) is reported per message; repeatable")
    p.add_argument("--skip-relay", action="store_true", help="do not run the relay baseline")
    p.add_argument("--machine", action="store_true",
                   help="CPU per message of every process on the path (API, worker, PostgreSQL, Redis, generator)")
    p.add_argument("--machine-skip", type=float, default=6.0,
                   help="--machine: seconds of sending left out at first (the checks come PUSH_DELAY later)")
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5433/bench"),
                   help="--machine: the API's database (its PostgreSQL's backends are measured)")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6391/0"),
                   help="--machine: the API's Redis (its server process is measured)")
    p.add_argument("--relay-only", action="store_true", help="only the relay baseline (no API needed)")
    p.add_argument("--relay-ws", default="auto", help="the relay's uvicorn websocket implementation")
    p.add_argument("--relay-ws-ping", type=float, default=20.0, help="the relay's websocket ping interval (0: off)")
    return p


def main() -> None:
    args = _parser().parse_args()
    raise_fd_limit()
    url = args.url.rstrip("/")
    args.duration = min(max(args.duration, 1.0), MAX_DURATION)
    args.procs = args.procs or (4 if args.idle else 2)
    if args.relay_only:
        count = args.idle or args.sockets
        run_relay(min(max(2, count - count % 2), MAX_SOCKETS), args,
                  hold=min(max(args.hold, 1.0), MAX_HOLD) if args.idle else 0.0)
        return
    asyncio.run(_check_api(url))
    api_pids = args.pid or find_listener_pids(host_port(url)[1])
    print(f"API {url}, pids {api_pids or 'unknown (no RSS/CPU figures)'}; this machine has {psutil.cpu_count()} "
          f"cores, load average {os.getloadavg()[0]:.2f}", flush=True)

    if args.idle:
        count = min(args.idle, MAX_SOCKETS)
        users = asyncio.run(ensure_users(url, min(count, args.users or count)))
        peers = [({"token": u["token"]}, u["id"]) for u in itertools.islice(itertools.cycle(users), count)]
        hold = min(max(args.hold, 1.0), MAX_HOLD)
        phase = run_phase("idle", url, peers, [""] * (count // 2), args, api_pids, hold=hold)
        print_phase(phase, idle=True)
        verdict = phase.connected == count and phase.rss_per_socket <= 20 * 1024 and phase.cpu_cores < 0.10
        print(f"target (issue 8): ≤ 20 KB RSS per idle socket, idle CPU < 10 % of a core, all connected: "
              f"{'met' if verdict else 'NOT met'}")
        return

    count = min(max(2, args.sockets - args.sockets % 2), MAX_SOCKETS)
    users = asyncio.run(ensure_users(url, count))
    pairs = [(users[i], users[i + 1]) for i in range(0, count, 2)]
    conversations = asyncio.run(ensure_direct_conversations(url, pairs))
    peers = [({"token": u["token"]}, u["id"]) for u in users]
    ours = run_phase("chatty", url, peers, conversations, args, api_pids)
    print_phase(ours)
    if ours.machine is not None:
        ours.machine.report([t for r in ours.results for t in r.sent_at], args.machine_skip)
    ok = (ours.connected == count and ours.total("lost") == 0 and ours.total("duplicates") == 0
          and not ours.failures("ack_errors") and ours.latency()["p99"] <= 50)
    print(f"target: nothing lost or duplicated, p99 ≤ 50 ms: {'met' if ok else 'NOT met'}", flush=True)
    if args.skip_relay:
        return
    baseline = run_relay(count, args)
    print(f"p99 ratio chatty/relay: {ours.latency()['p99'] / baseline.latency()['p99']:.2f}")
    print(f"CPU per delivered message ratio chatty/relay: "
          f"{ours.cpu_per_message_us() / baseline.cpu_per_message_us():.2f} (target ≤ 2)")


def run_relay(count: int, args: argparse.Namespace, hold: float = 0.0) -> Phase:
    """The same load (or idle sockets) against a bare relay started for the occasion."""
    relay, relay_url = start_relay(args.relay_ws, args.relay_ws_ping)
    args = argparse.Namespace(**{**vars(args), "worker_pid": None, "machine": False})
    try:
        relay_pids = find_listener_pids(host_port(relay_url)[1])
        peers, conversations = relay_peers(count)
        baseline = run_phase("relay", relay_url, peers, conversations, args, relay_pids, hold=hold)
        print_phase(baseline, idle=hold > 0)
        return baseline
    finally:
        relay.terminate()
        try:
            relay.wait(10)
        except subprocess.TimeoutExpired:
            relay.kill()


if __name__ == "__main__":
    main()
