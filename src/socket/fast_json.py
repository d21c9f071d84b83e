"""The JSON module python-socketio and python-engineio encode and decode packets with: msgspec.

The standard library's `json` decoded each client event and encoded each ack and emit on the send
path (bench/messaging.py). msgspec does it several times faster and
writes the same JSON (UTF-8 instead of `\\uXXXX` escapes). What msgspec refuses (a lone surrogate
escape, which the standard library accepts and the gateway answers `invalid_text`) goes through the
standard library, so every payload is handled as before.
"""

from __future__ import annotations

import json as _json
from typing import Any

import msgspec

_encode = msgspec.json.encode
_decode = msgspec.json.decode


def dumps(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` (compact)."""
    try:
        return _encode(obj).decode()
    except (TypeError, UnicodeEncodeError, OverflowError, msgspec.EncodeError):
        return _json.dumps(obj, separators=(",", ":"), **{k: v for k, v in kwargs.items() if k != "separators"})


def loads(data: str | bytes, **kwargs: Any) -> Any:
    """`json.loads`."""
    try:
        return _decode(data)
    except msgspec.DecodeError:
        return _json.loads(data, **kwargs)
