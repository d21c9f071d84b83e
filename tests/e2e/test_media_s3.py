"""Media on S3: an API and a worker configured with S3_* against moto's S3 server on loopback,
through real boto3 and real HTTP uploads to the presigned POST target."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer
from PIL import Image

from src.infra.local_services import HOST, free_port
from tests.e2e.harness import ApiProcess, WorkerProcess, new_user
from tests.e2e.media_support import GPS_IFD, fetch, jpeg_with_gps, post_file, start_upload, upload, wait_processed

BUCKET = "chatty-media-test"


@pytest.fixture(scope="module")
def s3_env(app_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """An S3 server (moto) and the environment of processes using it. They use their own Redis
    database, so the suite's worker (local-disk storage) never takes their tasks."""
    port = free_port()
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    redis_url = re.sub(r"/\d+$", "", app_env["REDIS_URL"]) + "/5"
    try:
        yield {"S3_ENDPOINT_URL": f"http://{HOST}:{port}", "S3_BUCKET": BUCKET, "S3_REGION": "us-east-1",
               "S3_ACCESS_KEY_ID": "testing", "S3_SECRET_ACCESS_KEY": "testing", "REDIS_URL": redis_url}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_api(s3_env: dict[str, str], app_env: dict[str, str], migrated_db: str) -> Iterator[ApiProcess]:
    """An API process and a worker process storing media on the S3 server."""
    worker = WorkerProcess({**app_env, **s3_env}).start()
    api = ApiProcess({**app_env, **s3_env})
    try:
        yield api.start()
    finally:
        api.stop()
        worker.stop()


def bucket_keys(s3_env: dict[str, str], prefix: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=s3_env["S3_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    found = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"].rsplit("/", 1)[1] for o in found)


async def test_s3_upload_process_download_delete(s3_api: ApiProcess, s3_env: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=s3_api.base_url + "/api/v1", timeout=30) as http:
        owner, other = await new_user(http), await new_user(http)
        media = await upload(http, owner, jpeg_with_gps(800, 600))
        ticket = (await start_upload(http, owner, size=10)).json()
        assert ticket["url"].startswith(s3_env["S3_ENDPOINT_URL"])  # straight to storage, not the API
        # The signed policy binds the type and the size (S3 enforces them; moto does not check them).
        policy = json.loads(base64.b64decode(ticket["fields"]["policy"]))
        assert ["content-length-range", 1, 10] in policy["conditions"]
        assert {"Content-Type": "image/jpeg"} in policy["conditions"]
        found = await wait_processed(http, owner, media["id"])
        assert found["status"] == "ready" and (found["width"], found["height"]) == (600, 800)
        for variant in ("thumb", "display"):
            response = await fetch(found["variants"][variant]["url"])
            assert response.status_code == 200
            image = Image.open(io.BytesIO(response.content))
            assert not image.getexif().get_ifd(GPS_IFD) and not image.getexif()
        prefix = f"{owner.id}/{media['id']}/"
        assert bucket_keys(s3_env, prefix) == ["display.jpg", "thumb.jpg"]  # the original with GPS went
        assert (await http.get(f"/media/{media['id']}", headers=other.headers)).status_code == 404

        # Sizes: a shorter object than declared is refused at completion.
        data = jpeg_with_gps()
        ticket = (await start_upload(http, owner, size=len(data) + 10)).json()
        assert (await post_file(ticket, data)).status_code == 204
        short = await http.post(f"/media/uploads/{ticket['upload_id']}/complete", headers=owner.headers)
        assert short.status_code == 400 and short.json()["code"] == "size_mismatch"
        assert bucket_keys(s3_env, f"{owner.id}/{ticket['upload_id']}/") == []

        assert (await http.delete(f"/media/{media['id']}", headers=owner.headers)).status_code == 204
        assert bucket_keys(s3_env, prefix) == []
        assert (await http.get(f"/media/{media['id']}", headers=owner.headers)).status_code == 404


async def test_s3_audio_is_stored_as_is(s3_api: ApiProcess, s3_env: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=s3_api.base_url + "/api/v1", timeout=30) as http:
        owner = await new_user(http)
        mp3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 400
        media = await upload(http, owner, mp3, content_type="audio/mpeg", filename="voice.mp3")
        assert media["content_type"] == "audio/mpeg" and media["kind"] == "audio"
        found = await wait_processed(http, owner, media["id"])
        assert found["status"] == "ready" and set(found["variants"]) == {"original"}
        assert (await fetch(found["variants"]["original"]["url"])).content == mp3
