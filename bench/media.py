"""Media: one worker process processing 2-megapixel JPEGs, and the upload-URL issuing rate.

    uv run python bench/media.py [--images 120] [--threads 4] [--duration 8] [--concurrency 16]

Self-contained and bounded: starts its own PostgreSQL and Redis under a temporary directory
(unless DATABASE_URL / REDIS_URL are set: a migrated database is then expected), migrates,
starts one `chatty api` (local-disk storage in a temporary MEDIA_DIR) and ONE `chatty worker`
process (`--processes 1 --threads N`) on 127.0.0.1, and stops them all at the end.

1. Upload-URL issuing: a closed loop of `POST /api/v1/media/uploads` for `duration` seconds,
   then the same loop on `/health/live` as the baseline; req/s and the ratio.
2. Processing burst: `images` 1920x1080 JPEGs (EXIF included) are uploaded to their signed
   URLs, then all completed at once; each `media:ready` socket event is timed against its
   complete call. Prints images/s (first complete → last ready) and p50/p99 complete→ready.
3. Unloaded latency: 10 more images completed one at a time.
Target: ≥ 20 images/s per worker process.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import socketio
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import psutil  # noqa: E402
from benchlib import CpuWatch, closed_loop, free_port, signup, summary_ms  # noqa: E402

MAX_IMAGES = 500
MAX_DURATION = 30.0
TARGET_IMAGES_PER_S = 20.0


def two_megapixel_jpeg() -> bytes:
    """A 1920x1080 photo-like JPEG (gradient plus noise, EXIF with GPS), about 0.5 MB."""
    rng = random.Random(7)
    image = Image.linear_gradient("L").resize((1920, 1080)).convert("RGB")
    noise = Image.effect_noise((1920, 1080), 40).convert("RGB")
    image = Image.blend(image, noise, 0.35)
    for _ in range(30):
        x, y = rng.randrange(1800), rng.randrange(1000)
        image.paste((rng.randrange(256), rng.randrange(256), rng.randrange(256)), (x, y, x + 120, y + 80))
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88, exif=exif.tobytes())
    return out.getvalue()


def start_services(work: Path) -> tuple[dict[str, str], list]:  # type: ignore[type-arg]
    from src.infra.local_services import start_postgres, start_redis

    stoppers = []
    env: dict[str, str] = {}
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    else:
        pg = start_postgres(work / "postgres", database="bench", fsync=False)
        stoppers.append(pg)
        env["DATABASE_URL"] = pg.url
        done = subprocess.run([sys.executable, "-m", "src.cli", "migrate"], cwd=ROOT, capture_output=True,
                              text=True, env={**os.environ, **env}, timeout=300)
        if done.returncode:
            raise SystemExit(f"migrate failed: {done.stderr}")
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    else:
        redis = start_redis(work / "redis")
        stoppers.append(redis)
        env["REDIS_URL"] = redis.url
    return env, stoppers


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "src.cli", *args], cwd=ROOT, env={**os.environ, **env},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


async def wait_until(check, within: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start within {within:.0f} s")
        await asyncio.sleep(0.2)


async def run(args: argparse.Namespace, base: str, worker_log: Path, worker_pid: int) -> None:
    api = base + "/api/v1"
    async with aiohttp.ClientSession() as http:
        async def live() -> bool:
            try:
                async with http.get(base + "/health/live") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await wait_until(live, 30, "the API")
        await wait_until(lambda: asyncio.sleep(0, "ready for action" in worker_log.read_text(errors="replace")),
                         30, "the worker")
        user = await signup(http, base, "media")
        headers = {"Authorization": f"Bearer {user['access_token']}"}
        jpeg = two_megapixel_jpeg()
        body = {"filename": "photo.jpg", "content_type": "image/jpeg", "size": len(jpeg), "purpose": "message"}

        async def issue(_: int) -> str | None:
            async with http.post(f"{api}/media/uploads", json=body, headers=headers) as r:
                await r.read()
                return None if r.status == 201 else str(r.status)

        async def health(_: int) -> str | None:
            async with http.get(base + "/health/live") as r:
                await r.read()
                return None if r.status == 200 else str(r.status)

        issued = await closed_loop(issue, args.concurrency, 1.0, args.duration)
        baseline = await closed_loop(health, args.concurrency, 1.0, args.duration)
        issue_rate, base_rate = issued.ok / args.duration, baseline.ok / args.duration
        print(f"upload URLs: {issue_rate:.0f} req/s (errors {issued.errors}) p99 "
              f"{summary_ms(issued.latencies)['p99']:.1f} ms; /health/live {base_rate:.0f} req/s; "
              f"ratio {issue_rate / base_rate:.2f}")

        ready_at: dict[str, float] = {}
        everyone_ready = asyncio.Event()
        wanted: set[str] = set()
        sio = socketio.AsyncClient(reconnection=False)

        @sio.on("media:ready")
        async def on_ready(data: dict) -> None:  # type: ignore[type-arg]
            ready_at[data["id"]] = time.perf_counter()
            if data["status"] != "ready":
                print(f"  media {data['id']} {data['status']}: {data.get('failure_reason')}")
            if wanted and wanted <= ready_at.keys():
                everyone_ready.set()

        await sio.connect(base, transports=["websocket"], auth={"token": user["access_token"]})

        async def uploaded() -> str:
            async with http.post(f"{api}/media/uploads", json=body, headers=headers) as r:
                ticket = await r.json()
            form = aiohttp.FormData()
            for name, value in ticket["fields"].items():
                form.add_field(name, value)
            form.add_field("file", jpeg, filename="photo.jpg", content_type="image/jpeg")
            async with http.post(ticket["url"], data=form) as r:
                assert r.status == 204, await r.text()
            return str(ticket["upload_id"])

        async def complete(media_id: str) -> float:
            started = time.perf_counter()
            async with http.post(f"{api}/media/uploads/{media_id}/complete", headers=headers) as r:
                assert r.status == 200, await r.text()
            return started

        gate = asyncio.Semaphore(8)

        async def bounded(coro):  # type: ignore[no-untyped-def]
            async with gate:
                return await coro

        ids = list(await asyncio.gather(*(bounded(uploaded()) for _ in range(args.images))))
        wanted.update(ids)
        worker = psutil.Process(worker_pid)
        cpu = CpuWatch([worker_pid, *(c.pid for c in worker.children(recursive=True))]).start()
        started = dict(zip(ids, await asyncio.gather(*(bounded(complete(m)) for m in ids)), strict=True))
        try:
            await asyncio.wait_for(everyone_ready.wait(), timeout=max(60.0, args.images * 2.0))
        except TimeoutError:
            print(f"  only {len(wanted & ready_at.keys())} of {len(ids)} ready in time")
        done = [m for m in ids if m in ready_at]
        span = max(ready_at[m] for m in done) - min(started.values())
        cores = cpu.stop()
        cpu_per_image = cores * (time.perf_counter() - min(started.values())) / max(1, len(done))
        lat = summary_ms([ready_at[m] - started[m] for m in done])
        rate = len(done) / span
        print(f"burst of {len(ids)} 2-MP JPEGs ({len(jpeg) / 1e6:.2f} MB each), 1 worker process "
              f"x {args.threads} threads: {rate:.1f} images/s; complete→ready p50 {lat['p50']:.0f} ms, "
              f"p99 {lat['p99']:.0f} ms, max {lat['max']:.0f} ms "
              f"({'meets' if rate >= TARGET_IMAGES_PER_S else 'BELOW'} the {TARGET_IMAGES_PER_S:.0f}/s target)")
        print(f"worker CPU: {cores:.2f} cores busy, {cpu_per_image * 1000:.0f} ms CPU per image "
              f"(= {1 / cpu_per_image:.0f} images/s per fully available core); machine load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

        single: list[float] = []
        for _ in range(10):
            media_id = await uploaded()
            wanted.clear()
            wanted.add(media_id)
            everyone_ready.clear()
            began = await complete(media_id)
            await asyncio.wait_for(everyone_ready.wait(), timeout=30)
            single.append(ready_at[media_id] - began)
        one = summary_ms(single)
        print(f"one at a time (10): complete→ready p50 {one['p50']:.0f} ms, p99 {one['p99']:.0f} ms")
        await sio.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    args.images = max(1, min(args.images, MAX_IMAGES))
    args.duration = max(1.0, min(args.duration, MAX_DURATION))
    work = Path(tempfile.mkdtemp(prefix="chatty-bench-media-"))
    work.chmod(0o755)
    env, stoppers = start_services(work)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env.update({"JWT_SECRET": secrets.token_urlsafe(36), "PUBLIC_BASE_URL": base, "MEDIA_DIR": str(work / "media"),
                "LOG_LEVEL": "WARNING", "UPLOAD_LIMIT_PER_USER": "1000000/hour",
                "WRITE_LIMIT_PER_USER": "1000000/minute", "SIGNUP_LIMIT_PER_IP": "1000/hour"})
    worker_log = work / "worker.log"
    children = [spawn(["api", "--host", "127.0.0.1", "--port", str(port)], env, work / "api.log"),
                spawn(["worker", "--processes", "1", "--threads", str(args.threads)], env, worker_log)]
    try:
        asyncio.run(run(args, base, worker_log, children[1].pid))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
        for service in stoppers:
            service.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
