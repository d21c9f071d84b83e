"""The API side of local-disk storage: signed upload (multipart POST, like S3's presigned POST)
and signed download. Mounted by the media module when storage is local."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

from litestar import Request, Router, get, post
from litestar.params import Parameter
from litestar.response import File
from litestar.status_codes import HTTP_204_NO_CONTENT
from multipart import MultipartSegment, ParserError, PushMultipartParser, parse_options_header

from src.common.errors import AppError, BadRequest, PayloadTooLarge
from src.infra.storage.local import LocalStorage, SignatureError


class SignatureRefused(AppError):
    status, code, title = 403, "signature_invalid", "Forbidden"


def _check(storage: LocalStorage, op: str, key: str, ct: str, limit: int, exp: int, sig: str) -> None:
    try:
        storage.verify(op, key, ct, limit, exp, sig)
    except SignatureError as exc:
        raise SignatureRefused(f"The signed URL is invalid or expired ({exc})") from None


def storage_router(storage: LocalStorage) -> Router:
    """Routes `/storage/upload` and `/storage/download` (no bearer token: the signature is the grant)."""

    @post("/upload", status_code=HTTP_204_NO_CONTENT, request_max_body_size=None, security=[],
          include_in_schema=False)
    async def upload(request: Request[Any, Any, Any], key: str, ct: Annotated[str, Parameter(max_length=200)],
                     max: int, exp: int, sig: Annotated[str, Parameter(max_length=128)]) -> None:
        """Store one object from a multipart form (`Content-Type` field, then `file`); at most `max` bytes."""
        _check(storage, "put", key, ct, max, exp, sig)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max + 64 * 1024:
            raise PayloadTooLarge("The upload is larger than allowed", code="upload_too_large")
        await _receive(request, storage.path_of(key), ct, max)

    @get("/download", security=[], include_in_schema=False)
    async def download(key: str, ct: Annotated[str, Parameter(max_length=200)], max: int, exp: int,
                       sig: Annotated[str, Parameter(max_length=128)], filename: str | None = None) -> File:
        """Stream one object."""
        _check(storage, "get", key, ct, max, exp, sig)
        path = storage.path_of(key)
        if not path.is_file():
            raise SignatureRefused("The object is gone", code="object_missing")
        return File(path=path, media_type=ct, filename=filename,
                    content_disposition_type="attachment" if filename else "inline",
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=300"})

    return Router(path="/storage", route_handlers=[upload, download], tags=["storage"])


async def _receive(request: Request[Any, Any, Any], target: Path, content_type: str, limit: int) -> None:
    """Parse the form as it streams in; write the file part to a temporary file, then move it in place."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != "multipart/form-data" or "boundary" not in options:
        raise BadRequest("Expected a multipart/form-data upload", code="bad_upload")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".upload")
    written, field, done = 0, None, False
    fields: dict[str, str] = {}
    try:
        with os.fdopen(fd, "wb") as out, PushMultipartParser(options["boundary"]) as parser:
            async for chunk in request.stream():
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        field = event.name
                        if field == "file" and fields.get("Content-Type") != content_type:
                            raise BadRequest("The Content-Type field must match the signed type",
                                             code="content_type_mismatch")
                        fields.setdefault(field, "")
                    elif event and field == "file":
                        written += len(event)
                        if written > limit:
                            raise PayloadTooLarge("The upload is larger than allowed", code="upload_too_large")
                        out.write(event)
                    elif event and field is not None and len(fields[field]) < 1024:
                        fields[field] += event.decode(errors="replace")
                    elif event is None and field == "file":
                        done = True
            for _ in parser.parse(b""):
                pass
        if not done or written == 0:
            raise BadRequest("The form has no file part", code="bad_upload")
        os.replace(tmp, target)
    except ParserError:
        raise BadRequest("The multipart body is malformed", code="bad_upload") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
