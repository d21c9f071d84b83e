"""Structured JSON logs (structlog), with request and user ids bound per request.

No secret reaches a log line: fields named like secrets are replaced, and every string value,
and every standard-library record (Dramatiq logs a failed job's arguments), is scrubbed of
values that look like secrets (`token=…`, `'password': '…'`, bearer tokens, JWTs).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import dramatiq
import dramatiq.broker
import structlog

REDACTED = "[redacted]"
_SECRET_KEYS = re.compile(r"pass|token|secret|authorization|cookie|signature|api_?key|credential",
                          re.IGNORECASE)
_SECRET_VALUES = re.compile(
    r"(?P<key>[\w-]*(?:pass(?:word)?|token|secret|signature|api_?key)[\w-]*)"
    r"(?P<sep>['\"]?\s*[:=]\s*['\"]?)(?P<value>[^'\"\s,&;)}\]]+)", re.IGNORECASE)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def redact(text: str) -> str:
    """`text` with secret-looking values replaced by "[redacted]"."""
    if not text:
        return text
    text = _SECRET_VALUES.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _JWT.sub(REDACTED, text)


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if _SECRET_KEYS.search(key):
            event[key] = REDACTED
        elif isinstance(event[key], str):
            event[key] = redact(event[key])
    return event


_MESSAGES = (dramatiq.Message, dramatiq.broker.MessageProxy)


class RedactTaskArguments(logging.Filter):
    """Dramatiq logs a message as `actor(arg=value, ...)`; keep only its actor and id, so a
    log line never carries a task's arguments (whatever a future actor is given)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, _MESSAGES) for a in record.args):
            record.args = tuple(f"{a.actor_name}(…)#{a.message_id}" if isinstance(a, _MESSAGES) else a
                                for a in record.args)
        return True


class RedactSecrets(logging.Filter):
    """Scrubs standard-library records (their message with its arguments, and any traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr; context variables (request_id, user_id) merged in; secrets scrubbed."""
    logging.basicConfig(level=level, format="%(message)s")
    for handler in logging.getLogger().handlers:  # Dramatiq's own handler included, in workers
        if not any(isinstance(f, RedactTaskArguments) for f in handler.filters):
            handler.addFilter(RedactTaskArguments())
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _drop_secrets,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
