"""The `chatty` command: api, worker, migrate, dev."""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from src.infra.local_services import (
    HOST,
    PostgresServer,
    RedisServer,
    ServiceError,
    TurnServer,
    port_open,
    start_postgres,
    start_redis,
)

DEV_PG_PORT = 55432
DEV_REDIS_PORT = 56379
DEV_SMTP_PORT = 1025
DEV_TURN_PORT = 3478


def project_root() -> Path:
    """The directory holding alembic.ini: the current one if it has it, else the source checkout."""
    cwd = Path.cwd()
    return cwd if (cwd / "alembic.ini").exists() else Path(__file__).resolve().parents[1]


def migrate(database_url: str | None = None, revision: str = "head") -> None:
    """Apply the Alembic migrations up to `revision` (DATABASE_URL from the environment by default)."""
    from alembic import command
    from alembic.config import Config

    root = project_root()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    if database_url:
        config.attributes["database_url"] = database_url
    command.upgrade(config, revision)


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to the hard one (each socket is a file); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # e.g. an infinite hard limit the kernel caps lower
            return soft
        return hard
    return soft


def _ws_protocol(name: str) -> Any:
    """uvicorn's `ws` option: websockets-sansio is served by its lighter subclass (src/socket/ws_protocol.py)."""
    if name == "websockets-sansio":
        from src.socket.ws_protocol import LightWebSocketProtocol

        return LightWebSocketProtocol
    return name


def run_api(host: str, port: int, workers: int) -> None:
    """Serve the ASGI app with uvicorn; X-Forwarded-* is trusted only from FORWARDED_ALLOW_IPS.

    With `workers` > 1 the processes share one listening socket: a websocket lives on whichever
    process accepted it (emits cross through Redis), but Engine.IO long-polling needs every request
    of a session on one process, so polling is refused (HTTP 400 "Invalid transport"; clients
    connect with the websocket transport, or run single-process APIs behind a sticky proxy)."""
    raise_open_files_limit()  # inherited by the worker processes
    if workers > 1:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Before any process imports prometheus_client: each writes its metrics there, /metrics sums them.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="chatty-metrics-")
        os.environ["SOCKET_POLLING"] = "false"
    import uvicorn

    from src.infra.config import get_settings

    settings = get_settings()
    # Explicit, never uvicorn's default (which trusts 127.0.0.1, so any local proxy or process could
    # choose the client address the per-IP limits count).
    trusted = settings.forwarded_allow_ips.strip()
    uvicorn.run("src.app:create_asgi_app", factory=True, host=host, port=port, workers=workers,
                proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None,
                loop="uvloop", http="httptools", access_log=False, lifespan="on",
                # permessage-deflate keeps ~40 KB of zlib state per socket for small JSON frames;
                # Engine.IO's own ping/pong is the heartbeat, so no websocket-level ping task per socket.
                ws=_ws_protocol(settings.socket_ws), ws_per_message_deflate=False, ws_ping_interval=None,
                log_level=os.environ.get("LOG_LEVEL", "info").lower(), timeout_graceful_shutdown=10)


def run_worker(processes: int, threads: int, queues: list[str] | None) -> None:
    """Replace this process with the Dramatiq CLI running `src.worker:setup`."""
    port = os.environ.get("WORKER_METRICS_PORT", "0")
    if port != "0":  # Dramatiq's Prometheus middleware reads these at import, in every process
        os.environ.setdefault("dramatiq_prom_host", "127.0.0.1")
        os.environ["dramatiq_prom_port"] = port  # noqa: SIM112 (the name Dramatiq reads)
        # One multiprocess directory, set before any worker imports prometheus_client: its
        # exposition server then serves Dramatiq's and Chatty's metrics of every worker process.
        directory = os.environ.setdefault("dramatiq_prom_db", tempfile.mkdtemp(prefix="chatty-worker-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    args = [sys.executable, "-m", "dramatiq", "src.worker:setup", "--processes", str(processes),
            "--threads", str(threads)]
    if queues:
        args += ["--queues", *queues]
    sys.stdout.flush()
    os.execv(sys.executable, args)


def _dev_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret


def _interrupt_once(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def run_dev(port: int) -> int:
    """Everything on this machine: local PostgreSQL and Redis under .data/, migrations, API, one worker."""
    signal.signal(signal.SIGINT, _interrupt_once)
    signal.signal(signal.SIGTERM, _interrupt_once)
    data = Path(".data").resolve()
    services: list[PostgresServer | RedisServer | TurnServer] = []
    children: list[subprocess.Popen[bytes]] = []
    code = 0
    try:
        if not os.environ.get("DATABASE_URL"):
            pg = start_postgres(data / "postgres", DEV_PG_PORT, database="chatty")
            services.append(pg)
            os.environ["DATABASE_URL"] = pg.url
        if not os.environ.get("REDIS_URL"):
            redis = start_redis(data / "redis", DEV_REDIS_PORT)
            services.append(redis)
            os.environ["REDIS_URL"] = redis.url
        os.environ.setdefault("JWT_SECRET", _dev_secret(data / "jwt_secret"))
        os.environ.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
        os.environ.setdefault("CORS_ORIGINS", "*")  # local front-end development only
        if turn := _dev_turn(data):
            services.append(turn)
        print(f"chatty dev: DATABASE_URL={os.environ['DATABASE_URL']} REDIS_URL={os.environ['REDIS_URL']}",
              flush=True)
        migrate()
        me = [sys.executable, "-m", "src.cli"]
        commands = [[*me, "api", "--host", "127.0.0.1", "--port", str(port)], [*me, "worker"]]
        if (not os.environ.get("SMTP_HOST") and importlib.util.find_spec("aiosmtpd")
                and not port_open(DEV_SMTP_PORT)):
            commands.append([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{DEV_SMTP_PORT}"])
        children += [subprocess.Popen(cmd, start_new_session=True) for cmd in commands]
        print(f"chatty dev: API on http://127.0.0.1:{port} (Ctrl-C stops everything)", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("chatty dev: a child process exited; stopping", file=sys.stderr)
        code = 1
    except ServiceError as exc:
        print(f"chatty dev: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("\nchatty dev: stopping", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop_children(children)
        for service in reversed(services):
            service.stop()
    return code


def _dev_turn(data: Path) -> TurnServer | None:
    """coturn on 127.0.0.1:3478 for calls (STUN and TURN with Chatty's credentials), when installed
    and TURN is not configured already; says why not otherwise."""
    if os.environ.get("TURN_SECRET"):
        return None
    if not shutil.which("turnserver"):
        print("chatty dev: coturn is not installed (apt-get install coturn): calls get no STUN/TURN server",
              flush=True)
        return None
    secret = _dev_secret(data / "turn_secret")
    try:
        turn = TurnServer(data / "coturn", DEV_TURN_PORT, secret).start()
    except ServiceError as exc:
        print(f"chatty dev: coturn did not start, calls get no STUN/TURN server: {exc}", flush=True)
        return None
    stun_url, turn_url = turn.urls
    os.environ.update(STUN_URLS=stun_url, TURN_URLS=turn_url, TURN_SECRET=secret)
    print(f"chatty dev: coturn (STUN/TURN) on {HOST}:{DEV_TURN_PORT}", flush=True)
    return turn


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatty", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    api = sub.add_parser("api", help="serve REST + Socket.IO with uvicorn")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1)
    worker = sub.add_parser("worker", help="run Dramatiq workers (dramatiq src.worker:setup)")
    worker.add_argument("--processes", type=int, default=1)
    worker.add_argument("--threads", type=int, default=4)
    worker.add_argument("--queues", nargs="*", help="only these queues (default: all)")
    mig = sub.add_parser("migrate", help="apply database migrations (alembic upgrade)")
    mig.add_argument("revision", nargs="?", default="head")
    dev = sub.add_parser("dev", help="local PostgreSQL + Redis under .data/, migrate, API and a worker")
    dev.add_argument("--port", type=int, default=8000)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `chatty` script."""
    from dotenv import load_dotenv

    args = _parser().parse_args(argv)
    load_dotenv(Path.cwd() / ".env", override=False)
    if args.command == "api":
        run_api(args.host, args.port, args.workers)
    elif args.command == "worker":
        run_worker(args.processes, args.threads, args.queues)
    elif args.command == "migrate":
        migrate(revision=args.revision)
    elif args.command == "dev":
        sys.exit(run_dev(args.port))


if __name__ == "__main__":
    main()
