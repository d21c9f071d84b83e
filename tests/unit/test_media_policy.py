"""Media upload rules: sniffing by bytes, kinds per purpose, local-disk URL signatures."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image

from src.common.errors import PayloadTooLarge, ValidationFailed
from src.infra.config import Settings
from src.infra.storage.local import LocalStorage, SignatureError
from src.modules.media.policy import FALLBACK_TYPE, check_upload, sniff


def image_bytes(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, fmt)
    return out.getvalue()


def settings() -> Settings:
    return Settings(database_url="postgresql://x@h/db", redis_url="redis://h/0", jwt_secret="s" * 40,
                    _env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(("data", "declared", "expected"), [
    (image_bytes("PNG"), "image", "image/png"),  # a PNG named .jpg is stored as PNG
    (image_bytes("JPEG"), "image", "image/jpeg"),
    (image_bytes("GIF"), "image", "image/gif"),
    (b"#!/bin/sh\necho hi\n" * 20, "image", None),  # a script named .png is refused
    (b"<html><script>alert(1)</script></html>", "image", None),
    (image_bytes("PNG"), "video", None),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"0" * 64, "file", "application/pdf"),
    (b"plain text notes\n" * 10, "file", FALLBACK_TYPE),
    (b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81\x01B\xf2\x81\x04B\xf3\x81\x08B\x82\x84webm", "audio", "audio/webm"),
])
def test_type_is_sniffed_from_the_bytes(data: bytes, declared: str, expected: str | None) -> None:
    assert sniff(data, declared) == expected


def test_kinds_and_sizes_per_purpose() -> None:
    config = settings()
    assert check_upload(config, "avatar", "image/png", 1000) == "image"
    assert check_upload(config, "message", "audio/ogg", 1000) == "audio"
    assert check_upload(config, "message", "application/pdf", 1000) == "file"
    with pytest.raises(ValidationFailed):
        check_upload(config, "avatar", "video/mp4", 1000)
    with pytest.raises(PayloadTooLarge):
        check_upload(config, "message", "image/jpeg", config.media_max_image_bytes + 1)
    assert check_upload(config, "message", "video/mp4", config.media_max_image_bytes + 1) == "video"


async def test_local_urls_refuse_tampering_and_expiry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    storage = LocalStorage(root=tmp_path, secret=b"k" * 32, base_url="http://api/storage")
    target = await storage.upload_target("u/m/original", "image/png", 100, expires_in=60)
    query = {k: v[0] for k, v in parse_qs(urlparse(target.url).query).items()}
    args = (query["key"], query["ct"], int(query["max"]), int(query["exp"]), query["sig"])
    storage.verify("put", *args)
    for bad in ((query["key"], query["ct"], 10**9, *args[3:]), ("u/other/original", *args[1:]),
                (*args[:4], "0" * 64)):
        with pytest.raises(SignatureError):
            storage.verify("put", *bad)
    with pytest.raises(SignatureError):
        storage.verify("get", *args)  # an upload grant is not a download grant
    stale = await storage.upload_target("u/m/original", "image/png", 100, expires_in=-1)
    query = {k: v[0] for k, v in parse_qs(urlparse(stale.url).query).items()}
    with pytest.raises(SignatureError, match="expired"):
        storage.verify("put", query["key"], query["ct"], int(query["max"]), int(query["exp"]), query["sig"])
    with pytest.raises(SignatureError):
        storage.path_of("../../etc/passwd")


async def test_video_without_ffmpeg_is_stored_with_processing_skipped(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from src.modules.media.processing import probe_video

    monkeypatch.setenv("PATH", str(tmp_path))  # no ffprobe / ffmpeg on it
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    result = await probe_video(source, tmp_path, 1_000_000)
    assert result.note == "skipped" and result.variants == []
