"""Turning an upload into what clients download: images re-encoded without metadata, video probed.

Pure functions over local files; the actor runs the CPU-bound ones in a thread.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import blurhash
from PIL import Image, ImageOps, UnidentifiedImageError

VARIANTS = {"thumb": 256, "display": 1280}  # name -> longest side in pixels
PROBE_TIMEOUT = 30


class MediaRejected(Exception):
    """The upload cannot be processed; `reason` is shown to the owner."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Variant:
    name: str
    path: Path
    content_type: str
    width: int
    height: int


@dataclass
class Processed:
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    placeholder: str | None = None
    note: str | None = None
    variants: list[Variant] = field(default_factory=list)


def process_image(source: Path, out_dir: Path, max_pixels: int) -> Processed:
    """Orientation applied, every metadata dropped, re-encoded in VARIANTS sizes, plus a blurhash.

    Pixels are counted from the header before anything is decoded, so a decompression bomb
    fails without allocating its canvas.
    """
    try:
        with Image.open(source) as opened:
            width, height = opened.size
            orientation = int(opened.getexif().get(0x0112, 1) or 1)
            if width * height > max_pixels:
                raise MediaRejected(f"image too large: {width}x{height} exceeds {max_pixels} pixels")
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                opened.seek(0)  # the first frame of an animation
                if opened.format == "JPEG":
                    opened.draft("RGB", (VARIANTS["display"], VARIANTS["display"]))
                opened.load()
                oriented = ImageOps.exif_transpose(opened) if orientation != 1 else opened
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise MediaRejected(f"not a readable image ({type(exc).__name__})") from None
    has_alpha = oriented.mode in ("RGBA", "LA", "PA") or (oriented.mode == "P" and "transparency" in oriented.info)
    mode = "RGBA" if has_alpha else "RGB"
    image = oriented if oriented.mode == mode else oriented.convert(mode)
    # The header size before EXIF orientation may be swapped: report what viewers see.
    full_w, full_h = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    result = Processed(width=full_w, height=full_h)
    # Largest first, each variant shrunk (in place) from the previous one, cheaper than from the full image.
    for name, side in sorted(VARIANTS.items(), key=lambda v: -v[1]):
        # BOX (area average) for the big step is a third cheaper than BILINEAR and as good when shrinking.
        resample = Image.Resampling.BOX if side > 256 else Image.Resampling.BICUBIC
        image.thumbnail((side, side), resample, reducing_gap=2.0)
        image.info = {}  # nothing of the original's metadata (EXIF, GPS, ICC, comments) is written
        if has_alpha:
            path, content_type = out_dir / f"{name}.png", "image/png"
            image.save(path, "PNG", compress_level=3)
        else:
            path, content_type = out_dir / f"{name}.jpg", "image/jpeg"
            image.save(path, "JPEG", quality=82)
        result.variants.append(Variant(name, path, content_type, image.width, image.height))
    tiny = image.convert("RGB")
    tiny.thumbnail((32, 32))
    result.placeholder = blurhash.encode(tiny, 4, 3)
    return result


def video_tools_present() -> bool:
    return shutil.which("ffprobe") is not None and shutil.which("ffmpeg") is not None


async def _run(*args: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT)
    except TimeoutError:
        proc.kill()
        raise MediaRejected("video processing timed out") from None
    if proc.returncode:
        raise MediaRejected("not a readable video")
    return out


async def probe_video(source: Path, out_dir: Path, max_pixels: int) -> Processed:
    """Duration and dimensions (ffprobe) and a poster frame (ffmpeg) in the image variants."""
    if not video_tools_present():
        return Processed(note="skipped")
    info = json.loads(await _run("ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                                 "-show_streams", str(source)))
    stream = next((s for s in info.get("streams", []) if s.get("codec_type") == "video"), None)
    if stream is None:
        raise MediaRejected("no video stream")
    duration = info.get("format", {}).get("duration") or stream.get("duration")
    poster = out_dir / "poster-source.jpg"
    await _run("ffmpeg", "-v", "error", "-y", "-i", str(source), "-frames:v", "1", "-q:v", "3", str(poster))
    result = await asyncio.to_thread(process_image, poster, out_dir, max_pixels)
    result.width, result.height = int(stream.get("width") or 0) or None, int(stream.get("height") or 0) or None
    result.duration_s = round(float(duration), 3) if duration else None
    return result
