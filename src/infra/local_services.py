"""PostgreSQL and Redis run as local processes from installed binaries (development and tests).

Both bind 127.0.0.1 only. A data directory may be reused: a second start finds the cluster
already initialised (or already running) and only starts it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

HOST = "127.0.0.1"
PG_USER = "postgres"


class ServiceError(RuntimeError):
    """A local service could not be found, started or reached."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = HOST) -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _terminate(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Stop a server we started: SIGTERM, then SIGKILL after `timeout` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pg_bin_dir() -> Path:
    """The directory holding initdb and pg_ctl: $PG_BIN, the newest /usr/lib/postgresql/*/bin, or PATH."""
    if env := os.environ.get("PG_BIN"):
        return Path(env)
    versions = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    versions.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if versions:
        return versions[-1]
    if found := shutil.which("initdb"):
        return Path(found).parent
    raise ServiceError("PostgreSQL binaries not found (install postgresql or set PG_BIN)")


class PostgresServer:
    """A PostgreSQL cluster in `data_dir`, superuser `postgres`, trust auth on loopback, TCP only."""

    def __init__(self, data_dir: Path, port: int, *, database: str = "chatty", fsync: bool = True,
                 max_connections: int = 200) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.database = database
        self.fsync = fsync
        self.max_connections = max_connections
        self.bin_dir = pg_bin_dir()
        self.log_file = self.data_dir / "server.log"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """The URL of another database on this server."""
        return f"postgresql://{PG_USER}@{HOST}:{self.port}/{database}"

    def _cmd(self, name: str, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / name), *args]
        return ["runuser", "-u", PG_USER, "--", *cmd] if _is_root() else cmd

    def _run(self, name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._cmd(name, *args), cwd="/", capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def _prepare_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _is_root():
            shutil.chown(self.data_dir, PG_USER, PG_USER)
            self.data_dir.chmod(0o700)
            if subprocess.run(["runuser", "-u", PG_USER, "--", "test", "-w", str(self.data_dir)]).returncode:
                raise ServiceError(f"user {PG_USER} cannot write {self.data_dir}: "
                                   "make its parent directories traversable (chmod o+x)")

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def running(self) -> bool:
        return self._run("pg_ctl", "status", "-D", str(self.data_dir)).returncode == 0

    def start(self) -> PostgresServer:
        """Initialise the cluster if needed, start it (or adopt a running one), create the database."""
        self._prepare_dir()
        if not self.initialised():
            done = self._run("initdb", "-D", str(self.data_dir), "-U", PG_USER, "--auth=trust",
                             "-E", "UTF8", "--no-locale", "--no-sync")
            if done.returncode:
                raise ServiceError(f"initdb failed:\n{done.stdout}{done.stderr}")
        if self.running():
            self.port = self._running_port()
        else:
            self._start_server()
        self.create_database(self.database)
        return self

    def _running_port(self) -> int:
        lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        return int(lines[3])

    def _start_server(self) -> None:
        if port_open(self.port):
            raise ServiceError(f"port {self.port} is already in use")
        opts = [f"-c listen_addresses={HOST}", f"-c port={self.port}", "-c unix_socket_directories=''",
                f"-c max_connections={self.max_connections}"]
        if not self.fsync:
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        done = self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file),
                         "-w", "-t", "60", "-o", " ".join(opts))
        if done.returncode:
            output = f"{done.stdout}{done.stderr}\n{_tail(self.log_file)}"
            raise ServiceError(f"PostgreSQL did not start:\n{output}")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run one SQL statement with psql and return its unaligned output."""
        done = subprocess.run(
            [str(self.bin_dir / "psql"), "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", HOST,
             "-p", str(self.port), "-U", PG_USER, "-d", database, "-c", sql],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if done.returncode:
            raise ServiceError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def create_database(self, name: str) -> None:
        """Create database `name` unless it exists."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"bad database name {name!r}")
        if name != "postgres" and not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
            self.psql(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        """Stop the server (fast shutdown); a no-op when it is not running."""
        if not self.initialised() or not self.running():
            return
        if self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30").returncode:
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w")


class RedisServer:
    """A redis-server child process on a fixed 127.0.0.1 port, without persistence."""

    def __init__(self, data_dir: Path, port: int, *, binary: str | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        found = binary or shutil.which("redis-server")
        if not found:
            raise ServiceError("redis-server not found (install redis-server)")
        self.binary = found
        self.log_file = self.data_dir / "redis.log"
        self.pid_file = self.data_dir / "redis.pid"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15) -> RedisServer:
        """Start the server on the same port (again) and wait until it answers PING."""
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._kill_stale()
        if port_open(self.port):
            raise ServiceError(f"port {self.port} is already in use")
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", HOST, "--dir", str(self.data_dir),
                 "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
                 "--pidfile", str(self.pid_file), "--loglevel", "warning"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self._ping():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"redis-server did not start:\n{_tail(self.log_file)}")
            time.sleep(0.05)
        return self

    def _ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _kill_stale(self) -> None:
        """Stop a redis-server left running from this directory by a process that died."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            self.pid_file.unlink(missing_ok=True)
            return
        if b"redis-server" in cmdline:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def stop(self, timeout: float = 10) -> None:
        """Stop the server; a no-op when it is not running."""
        proc, self._proc = self._proc, None
        _terminate(proc, timeout)
        self.pid_file.unlink(missing_ok=True)


def start_postgres(data_dir: Path, port: int | None = None, *, database: str = "chatty",
                   fsync: bool = True, max_connections: int = 200) -> PostgresServer:
    """Start (initialising if needed) a PostgreSQL cluster under `data_dir` and create `database`."""
    return PostgresServer(data_dir, port or free_port(), database=database, fsync=fsync,
                          max_connections=max_connections).start()


def start_redis(data_dir: Path, port: int | None = None) -> RedisServer:
    """Start a redis-server writing its log under `data_dir`."""
    return RedisServer(data_dir, port or free_port()).start()


class TurnServer:
    """coturn (`turnserver`) on 127.0.0.1: STUN and TURN over UDP/TCP, TURN REST-API credentials
    (`use-auth-secret`) with `secret`, relaying between loopback peers (development and tests)."""

    def __init__(self, data_dir: Path, port: int, secret: str, *, realm: str = "chatty.local",
                 relay_ports: tuple[int, int] = (49160, 49260)) -> None:
        found = shutil.which("turnserver")
        if not found:
            raise ServiceError("turnserver not found (install coturn)")
        self.binary = found
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.secret = secret
        self.realm = realm
        self.relay_ports = relay_ports
        self.log_file = self.data_dir / "turnserver.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def urls(self) -> tuple[str, str]:
        """(the STUN URL, the TURN URL) of this server."""
        return f"stun:{HOST}:{self.port}", f"turn:{HOST}:{self.port}?transport=udp"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10) -> TurnServer:
        """Start coturn and wait until it accepts TCP connections on its port."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if port_open(self.port):
            raise ServiceError(f"port {self.port} is already in use")
        low, high = self.relay_ports
        args = [self.binary, "-n", "--listening-ip", HOST, "--relay-ip", HOST, "--listening-port", str(self.port),
                "--min-port", str(low), "--max-port", str(high), "--use-auth-secret",
                "--static-auth-secret", self.secret, "--realm", self.realm, "--fingerprint",
                "--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780",
                "--no-software-attribute", "--no-stdout-log", "--simple-log", "--log-file", str(self.log_file),
                "--pidfile", str(self.data_dir / "turnserver.pid")]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"turnserver did not start:\n{_tail(self.log_file)}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 10) -> None:
        """Stop coturn; a no-op when it is not running."""
        proc, self._proc = self._proc, None
        _terminate(proc, timeout)
