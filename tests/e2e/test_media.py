"""Media on local-disk storage: direct uploads to signed API URLs, processing by a real worker,
access rules, messages and profiles carrying media, lifecycle clean-up."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import asyncpg
import httpx
import pytest
from PIL import Image

from src.common.events.base import Event, decode_event
from src.common.events.media import MediaProcessed
from src.common.events.messaging import MessageCreated
from src.common.events.posts import PostCreated, PostDeleted
from src.infra.config import Settings
from src.infra.context import AppContext
from src.infra.storage import LocalStorage
from src.modules.media import lifecycle
from tests.e2e.harness import ApiProcess, EventRecorder, User, WorkerProcess, connect_socket, new_user
from tests.e2e.media_support import (
    GPS_IFD,
    bomb_png,
    fetch,
    jpeg_with_gps,
    png,
    post_file,
    start_upload,
    upload,
    wait_processed,
)

pytestmark = pytest.mark.usefixtures("worker")


def storage_of(app_env: dict[str, str]) -> LocalStorage:
    settings = Settings(database_url=app_env["DATABASE_URL"], redis_url=app_env["REDIS_URL"],
                        jwt_secret=app_env["JWT_SECRET"], _env_file=None)  # type: ignore[call-arg]
    return LocalStorage(root=app_env["MEDIA_DIR"], secret=settings.media_signing_key, base_url="unused")


def object_files(app_env: dict[str, str], owner: str, media_id: str) -> list[Path]:
    folder = Path(app_env["MEDIA_DIR"]) / owner / media_id
    return sorted(folder.iterdir()) if folder.exists() else []


async def direct_conversation(http: httpx.AsyncClient, a: User, b: User) -> str:
    response = await http.post("/conversations", headers=a.headers, json={"user_id": b.id})
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


async def test_photo_is_processed_without_metadata_and_owner_hears_ready(
        http: httpx.AsyncClient, api: ApiProcess, worker: WorkerProcess, app_env: dict[str, str]) -> None:
    owner = await new_user(http)
    recorder = EventRecorder()
    socket = await connect_socket(api.base_url, owner.token, recorder=recorder)
    try:
        original = jpeg_with_gps(640, 480, orientation=6)
        assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)  # the upload has GPS
        media = await upload(http, owner, original)
        assert media["status"] == "processing" and media["content_type"] == "image/jpeg"
        ready = await recorder.wait_for("media:ready", lambda p: p["id"] == media["id"], timeout=30)
        assert ready["status"] == "ready" and ready["variants"] == {}  # no URL goes through the broker
    finally:
        await socket.disconnect()
    found = await wait_processed(http, owner, media["id"])
    assert (found["width"], found["height"]) == (480, 640)  # orientation applied
    assert found["placeholder"]
    assert set(found["variants"]) == {"thumb", "display"}
    for name, side in (("thumb", 256), ("display", 1280)):
        response = await fetch(found["variants"][name]["url"])
        assert response.status_code == 200
        image = Image.open(io.BytesIO(response.content))
        assert max(image.size) == min(side, 640) and image.size[1] > image.size[0]
        assert not image.getexif(), f"{name} keeps EXIF"
        assert b"GPS" not in response.content and b"SpyCam" not in response.content
    # The original, which carried the GPS position, is gone from storage.
    assert [p.name for p in object_files(app_env, owner.id, media["id"])] == ["display.jpg", "thumb.jpg"]


async def test_type_is_sniffed_from_the_bytes(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    as_png = await upload(http, owner, png(), content_type="image/jpeg", filename="really.jpg")
    assert as_png["content_type"] == "image/png"
    assert (await wait_processed(http, owner, as_png["id"]))["status"] == "ready"

    script = b"#!/bin/sh\nrm -rf / --no-preserve-root\n" * 10
    ticket = (await start_upload(http, owner, size=len(script), content_type="image/png", filename="x.png")).json()
    assert (await post_file(ticket, script, "x.png")).status_code == 204
    refused = await http.post(f"/media/uploads/{ticket['upload_id']}/complete", headers=owner.headers)
    assert refused.status_code == 400 and refused.json()["code"] == "type_mismatch"
    assert (await http.get(f"/media/{ticket['upload_id']}", headers=owner.headers)).json()["status"] == "failed"

    audio_as_image = await start_upload(http, owner, size=100, content_type="audio/mpeg", purpose="avatar")
    assert audio_as_image.status_code == 400 and audio_as_image.json()["code"] == "type_not_allowed"


async def test_sizes_over_the_declared_or_allowed_size_are_refused(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    too_big = await start_upload(http, owner, size=21 * 1024 * 1024)
    assert too_big.status_code == 413 and too_big.json()["code"] == "upload_too_large"

    data = jpeg_with_gps()
    ticket = (await start_upload(http, owner, size=len(data) - 100)).json()
    over = await post_file(ticket, data)
    assert over.status_code == 413
    assert (await http.post(f"/media/uploads/{ticket['upload_id']}/complete",
                            headers=owner.headers)).json()["code"] == "upload_missing"

    ticket = (await start_upload(http, owner, size=len(data) + 100)).json()
    assert (await post_file(ticket, data)).status_code == 204
    short = await http.post(f"/media/uploads/{ticket['upload_id']}/complete", headers=owner.headers)
    assert short.status_code == 400 and short.json()["code"] == "size_mismatch"


async def test_tampered_and_expired_signed_urls_are_refused(http: httpx.AsyncClient,
                                                           app_env: dict[str, str]) -> None:
    owner = await new_user(http)
    data = jpeg_with_gps()
    ticket = (await start_upload(http, owner, size=len(data))).json()
    url = urlparse(ticket["url"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    bigger = {**ticket, "url": url._replace(query=urlencode({**query, "max": 10**9})).geturl()}
    assert (await post_file(bigger, data)).status_code == 403
    other_key = {**ticket, "url": url._replace(query=urlencode({**query, "key": f"{owner.id}/x/original"})).geturl()}
    assert (await post_file(other_key, data)).status_code == 403

    storage = storage_of(app_env)
    expired = await storage.upload_target(query["key"], "image/jpeg", len(data), expires_in=-5)
    base = ticket["url"].split("?")[0]
    stale = {**ticket, "url": base + "?" + expired.url.split("?")[1]}
    response = await post_file(stale, data)
    assert response.status_code == 403 and "expired" in response.json()["detail"]

    media = await upload(http, owner, data)
    found = await wait_processed(http, owner, media["id"])
    download = urlparse(found["variants"]["thumb"]["url"])
    params = {k: v[0] for k, v in parse_qs(download.query).items()}
    assert (await fetch(download._replace(query=urlencode({**params, "exp": int(params["exp"]) + 3600})).geturl())
            ).status_code == 403
    old = await storage.download_url(params["key"], params["ct"], expires_in=-5)
    assert (await fetch(download.geturl().split("?")[0] + "?" + old.split("?")[1])).status_code == 403


@pytest.fixture
def clip(tmp_path: Path) -> bytes:
    """A 1.5 s, 320x240 MP4 made by ffmpeg."""
    path = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=1.5:size=320x240:rate=10",
                    "-pix_fmt", "yuv420p", str(path)], check=True, timeout=60)
    return path.read_bytes()


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg is not installed")
async def test_video_is_probed_and_gets_a_poster(http: httpx.AsyncClient, clip: bytes) -> None:
    owner = await new_user(http)
    media = await upload(http, owner, clip, content_type="video/mp4", filename="clip.mp4")
    found = await wait_processed(http, owner, media["id"])
    assert found["status"] == "ready" and found["processing"] is None
    assert (found["width"], found["height"]) == (320, 240) and 1.0 <= found["duration_s"] <= 2.0
    assert set(found["variants"]) == {"thumb", "display", "original"}
    poster = await fetch(found["variants"]["display"]["url"])
    assert Image.open(io.BytesIO(poster.content)).size == (320, 240)


async def test_decompression_bomb_fails_cleanly(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    media = await upload(http, owner, bomb_png(), content_type="image/png", filename="bomb.png")
    failed = await wait_processed(http, owner, media["id"])
    assert failed["status"] == "failed" and "pixels" in failed["failure_reason"]
    assert failed["variants"] == {}
    # The worker is still healthy: the next image is processed.
    after = await upload(http, owner, png())
    assert (await wait_processed(http, owner, after["id"]))["status"] == "ready"


async def test_message_media_members_only_and_removed_with_the_message(
        http: httpx.AsyncClient, api: ApiProcess, db: asyncpg.Connection, app_env: dict[str, str]) -> None:
    alice, bob, eve = await new_user(http), await new_user(http), await new_user(http)
    conversation = await direct_conversation(http, alice, bob)
    recorder = EventRecorder()
    socket = await connect_socket(api.base_url, bob.token, recorder=recorder)
    try:
        media = await upload(http, alice, jpeg_with_gps())
        sent = await http.post(f"/conversations/{conversation}/messages", headers=alice.headers,
                               json={"client_msg_id": "m1", "media_ids": [media["id"]]})
        assert sent.status_code == 201, sent.text
        assert sent.json()["media"][0]["id"] == media["id"] and sent.json()["media"][0]["kind"] == "image"
        message_id = sent.json()["id"]
        updated = await recorder.wait_for("message:updated", lambda p: p["id"] == message_id, timeout=30)
        assert updated["media"][0]["status"] == "ready"
    finally:
        await socket.disconnect()
    history = (await http.get(f"/conversations/{conversation}/messages", headers=bob.headers)).json()
    assert history["items"][-1]["media"][0]["status"] == "ready"

    seen = await http.get(f"/media/{media['id']}", headers=bob.headers)
    assert seen.status_code == 200 and (await fetch(seen.json()["variants"]["display"]["url"])).status_code == 200
    assert (await http.get(f"/media/{media['id']}", headers=eve.headers)).status_code == 404

    # Media that is not the sender's, or not for messages, is refused.
    bobs = await upload(http, bob, png())
    avatar = await upload(http, alice, png(), purpose="avatar")
    for ids in ([bobs["id"]], [avatar["id"]], [str(uuid.uuid4())]):
        refused = await http.post(f"/conversations/{conversation}/messages", headers=alice.headers,
                                  json={"client_msg_id": f"bad-{ids[0]}", "media_ids": ids})
        assert refused.status_code == 400 and refused.json()["code"] == "invalid_media"

    # A member who leaves can no longer fetch it (no group removal yet: the membership row goes).
    await db.execute("DELETE FROM messaging.members WHERE conversation_id = $1 AND user_id = $2",
                     uuid.UUID(conversation), uuid.UUID(bob.id))
    assert (await http.get(f"/media/{media['id']}", headers=bob.headers)).status_code == 404
    await db.execute("INSERT INTO messaging.members (conversation_id, user_id) VALUES ($1, $2)",
                     uuid.UUID(conversation), uuid.UUID(bob.id))

    deleted = await http.delete(f"/conversations/{conversation}/messages/{message_id}?scope=everyone",
                                headers=alice.headers)
    assert deleted.status_code == 204
    for _ in range(100):
        if (await http.get(f"/media/{media['id']}", headers=alice.headers)).status_code == 404:
            break
        await asyncio.sleep(0.05)
    assert (await http.get(f"/media/{media['id']}", headers=alice.headers)).status_code == 404
    assert object_files(app_env, alice.id, media["id"]) == []


async def test_avatar_is_public_while_current_and_history_follows_profile_privacy(
        http: httpx.AsyncClient, api: ApiProcess) -> None:
    owner, viewer = await new_user(http), await new_user(http)
    first = await upload(http, owner, jpeg_with_gps(), purpose="avatar")
    processing = await http.put("/users/me/avatar", headers=owner.headers, json={"media_id": first["id"]})
    assert processing.status_code == 400 and processing.json()["code"] == "invalid_media"
    await wait_processed(http, owner, first["id"])
    profile = (await http.put("/users/me/avatar", headers=owner.headers, json={"media_id": first["id"]})).json()
    assert profile["avatar_media_id"] == first["id"]
    avatar_url = profile["avatar_url"]
    async with httpx.AsyncClient(timeout=10) as anonymous:
        for _ in range(100):  # media records the avatar from the event, just after the commit
            redirect = await anonymous.get(avatar_url)
            if redirect.status_code == 302:
                break
            await asyncio.sleep(0.05)
        assert redirect.status_code == 302
        image = await anonymous.get(redirect.headers["location"])
        assert image.status_code == 200 and Image.open(io.BytesIO(image.content)).size[0] <= 256
    assert (await http.get(f"/users/{viewer.id}", headers=viewer.headers)).json()["avatar_url"] is None

    message_media = await upload(http, owner, png())
    await wait_processed(http, owner, message_media["id"])
    wrong = await http.put("/users/me/background", headers=owner.headers, json={"media_id": message_media["id"]})
    assert wrong.status_code == 400

    second = await upload(http, owner, png(), purpose="avatar")
    await wait_processed(http, owner, second["id"])
    changed = await http.put("/users/me/avatar", headers=owner.headers, json={"media_id": second["id"]})
    assert changed.status_code == 200
    images = (await http.get(f"/users/{owner.id}/images", headers=viewer.headers)).json()["items"]
    assert [(i["media_id"], i["current"]) for i in images] == [(second["id"], True), (first["id"], False)]
    async with httpx.AsyncClient(timeout=10) as anonymous:
        for _ in range(100):
            if (await anonymous.get(avatar_url)).status_code == 404:
                break
            await asyncio.sleep(0.05)
        assert (await anonymous.get(avatar_url)).status_code == 404  # no longer current: not public
    assert (await http.get(f"/media/{first['id']}", headers=viewer.headers)).status_code == 200  # profile visible

    hidden = await http.patch("/privacy/settings", headers=owner.headers, json={"profile_visibility": "nobody"})
    assert hidden.status_code == 200
    assert (await http.get(f"/users/{owner.id}/images", headers=viewer.headers)).status_code == 404
    assert (await http.get(f"/media/{first['id']}", headers=viewer.headers)).status_code == 404

    assert (await http.delete(f"/media/{second['id']}", headers=owner.headers)).status_code == 204
    for _ in range(100):
        if (await http.get("/users/me", headers=owner.headers)).json()["avatar_media_id"] is None:
            break
        await asyncio.sleep(0.05)
    assert (await http.get("/users/me", headers=owner.headers)).json()["avatar_url"] is None


async def test_cleanup_removes_expired_uploads_and_orphans_with_their_objects(
        http: httpx.AsyncClient, ctx: AppContext, db: asyncpg.Connection, app_env: dict[str, str]) -> None:
    owner = await new_user(http)
    data = jpeg_with_gps()
    never_completed = (await start_upload(http, owner, size=len(data))).json()
    assert (await post_file(never_completed, data)).status_code == 204
    orphan = await upload(http, owner, data)
    posted = await upload(http, owner, png(), purpose="post")
    for media in (orphan, posted):
        await wait_processed(http, owner, media["id"])
    post_id = uuid.uuid4()
    async with ctx.uow() as tx:  # the posts module is built elsewhere: publish its event here
        tx.publish(PostCreated(post_id=post_id, author_id=uuid.UUID(owner.id), privacy="public",
                               media_ids=[uuid.UUID(posted["id"])]))
    for _ in range(200):  # recorded by the worker after the commit
        if await db.fetchval("SELECT count(*) FROM media.attachments WHERE media_id = $1", uuid.UUID(posted["id"])):
            break
        await asyncio.sleep(0.05)
    ids = [uuid.UUID(m) for m in (never_completed["upload_id"], orphan["id"], posted["id"])]
    await db.execute("UPDATE media.items SET created_at = now() - interval '25 hours' WHERE id = ANY($1)", ids)
    assert object_files(app_env, owner.id, never_completed["upload_id"])

    stuck = uuid.uuid4()  # completed, but its task gave up: it fails, it is not left processing
    await db.execute("INSERT INTO media.items (id, owner_id, purpose, kind, status, filename, declared_type, "
                     "content_type, size, completed_at) VALUES ($1, $2, 'message', 'image', 'processing', 'x.jpg', "
                     "'image/jpeg', 'image/jpeg', 10, now() - interval '2 hours')", stuck, uuid.UUID(owner.id))

    storage = storage_of(app_env)
    assert await lifecycle.expire_uploads(ctx, storage) >= 1
    assert await db.fetchval("SELECT status FROM media.items WHERE id = $1", stuck) == "failed"
    assert await lifecycle.remove_orphans(ctx, storage) >= 1
    assert await lifecycle.remove_orphans(ctx, storage) == 0  # idempotent
    remaining = {r["id"] for r in await db.fetch("SELECT id FROM media.items WHERE id = ANY($1)", ids)}
    assert remaining == {uuid.UUID(posted["id"])}
    assert object_files(app_env, owner.id, never_completed["upload_id"]) == []
    assert object_files(app_env, owner.id, orphan["id"]) == []
    assert object_files(app_env, owner.id, posted["id"])

    async with ctx.uow() as tx:
        tx.publish(PostDeleted(post_id=post_id, author_id=uuid.UUID(owner.id),
                               media_ids=[uuid.UUID(posted["id"])]))
    for _ in range(200):  # the listener runs after the commit
        if not await db.fetchval("SELECT count(*) FROM media.items WHERE id = $1", uuid.UUID(posted["id"])):
            break
        await asyncio.sleep(0.05)
    assert await db.fetchval("SELECT count(*) FROM media.items WHERE id = $1", uuid.UUID(posted["id"])) == 0
    assert object_files(app_env, owner.id, posted["id"]) == []


async def test_deleting_the_account_removes_its_media(http: httpx.AsyncClient, db: asyncpg.Connection,
                                                     app_env: dict[str, str]) -> None:
    owner = await new_user(http)
    media = await upload(http, owner, png())
    await wait_processed(http, owner, media["id"])
    gone = await http.request("DELETE", "/users/me", headers=owner.headers,
                              json={"password": "Correct-Horse-Battery-9"})
    assert gone.status_code == 204
    for _ in range(200):
        if not await db.fetchval("SELECT count(*) FROM media.items WHERE owner_id = $1", uuid.UUID(owner.id)):
            break
        await asyncio.sleep(0.05)
    assert not await db.fetchval("SELECT count(*) FROM media.items WHERE owner_id = $1", uuid.UUID(owner.id))
    assert object_files(app_env, owner.id, media["id"]) == []


async def test_listeners_delivered_twice_have_one_effect(http: httpx.AsyncClient, api: ApiProcess, ctx: AppContext,
                                                         db: asyncpg.Connection) -> None:
    alice, bob = await new_user(http), await new_user(http)
    conversation = await direct_conversation(http, alice, bob)
    media = await upload(http, alice, png())
    recorder = EventRecorder()
    socket = await connect_socket(api.base_url, bob.token, recorder=recorder)
    try:
        sent = (await http.post(f"/conversations/{conversation}/messages", headers=alice.headers,
                                json={"client_msg_id": "twice", "media_ids": [media["id"]]})).json()
        await recorder.wait_for("message:updated", lambda p: p["id"] == sent["id"], timeout=30)
    finally:
        await socket.disconnect()

    async def stored(name: str, key: str, value: str) -> list[Event]:
        rows = await db.fetch("SELECT name, payload FROM infra.outbox WHERE name = $1 AND payload->>$2 = $3",
                              name, key, value)
        return [decode_event(r["name"], json.loads(r["payload"])) for r in rows]

    created = await stored(MessageCreated.name, "message_id", sent["id"])
    processed = [e for e in await stored(MediaProcessed.name, "media_id", media["id"])
                 if isinstance(e, MediaProcessed) and e.messages]
    assert len(created) == 1 and len(processed) == 1
    for event in (*created, *created, *processed, *processed):
        assert await ctx.bus.deliver(event) == []
    assert await db.fetchval("SELECT count(*) FROM media.attachments WHERE media_id = $1",
                             uuid.UUID(media["id"])) == 1
    assert len([e for e in await stored(MediaProcessed.name, "media_id", media["id"])
                if isinstance(e, MediaProcessed) and e.messages]) == 1
    assert await db.fetchval(
        "SELECT count(*) FROM messaging.changes WHERE user_id = $1 AND type = 'message:updated' "
        "AND payload->>'id' = $2", uuid.UUID(bob.id), sent["id"]) == 1


async def test_large_file_streams_to_disk_and_downloads_as_attachment(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    data = os.urandom(3 * 1024 * 1024)  # larger than the API's JSON body limit: uploads stream
    media = await upload(http, owner, data, content_type="application/zip", filename="notes ü.bin")
    assert media["kind"] == "file" and media["content_type"] == "application/octet-stream"  # not a zip
    found = await wait_processed(http, owner, media["id"])
    response = await fetch(found["variants"]["original"]["url"])
    assert response.status_code == 200 and response.content == data
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["x-content-type-options"] == "nosniff"
