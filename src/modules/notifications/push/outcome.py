"""What a push service answered, reduced to what we do next."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

from src.common.clock import utcnow

MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True)
class Outcome:
    """`sent`; `gone` (delete the token); `retry` (after `retry_after` s if the service said); `failed`."""

    status: Literal["sent", "gone", "retry", "failed"]
    retry_after: float | None = None
    http_status: int | None = None


SENT = Outcome("sent")


def retry_after(value: str | None) -> float | None:
    """A `Retry-After` header (seconds or an HTTP date) in seconds, capped; None when absent or bad."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - utcnow()).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def from_status(status: int, retry_header: str | None, *, gone: bool) -> Outcome:
    """The outcome of an HTTP answer: 2xx sent, `gone` as told, 429 / 5xx retry, else failed."""
    if 200 <= status < 300:
        return SENT
    if gone:
        return Outcome("gone", http_status=status)
    if status == 429 or status >= 500:
        return Outcome("retry", retry_after(retry_header), http_status=status)
    return Outcome("failed", http_status=status)
