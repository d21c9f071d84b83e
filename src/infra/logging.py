"""Structured JSON logs (structlog), with request and user ids bound per request."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import dramatiq
import dramatiq.broker
import structlog

_SECRET_KEYS = re.compile(r"pass|token|secret|authorization", re.IGNORECASE)


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if _SECRET_KEYS.search(key):
            event[key] = "[redacted]"
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


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr; context variables (request_id, user_id) merged in."""
    logging.basicConfig(level=level, format="%(message)s")
    for handler in logging.getLogger().handlers:  # Dramatiq's own handler included, in workers
        if not any(isinstance(f, RedactTaskArguments) for f in handler.filters):
            handler.addFilter(RedactTaskArguments())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
