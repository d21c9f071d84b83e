"""Checks of user text (bodies, emoji, idempotency keys) with stable error codes.

Invalid UTF-8 never reaches these checks as text: `TextSafeRequest` turns it into
`invalid_text`, and keeps JSON-escaped lone surrogates (which msgspec refuses as "truncated")
so that `check_text` can name them.
"""

from __future__ import annotations

import json
from typing import Any

import emoji as emoji_data
from litestar import Request
from litestar.exceptions import SerializationException

from src.common.errors import ValidationFailed
from src.modules.messaging.schemas import MAX_BODY_CHARS

MAX_EMOJI_CHARS = 16


def check_text(value: str, field: str) -> None:
    """400 `invalid_text` for NUL characters or lone surrogates (text that is not valid Unicode)."""
    if "\x00" in value:
        raise ValidationFailed(f"{field} contains a NUL character", field=field, code="invalid_text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationFailed(f"{field} is not valid Unicode text", field=field, code="invalid_text") from None


def check_body(body: str | None, *, has_media: bool) -> None:
    """A message body: present (or media attached), at most 4000 characters, valid text."""
    if body is None or not body.strip():
        if not has_media:
            raise ValidationFailed("a message needs a body or media", field="body", code="empty_message")
        if body is None:
            return
    if len(body) > MAX_BODY_CHARS:
        raise ValidationFailed(f"body is longer than {MAX_BODY_CHARS} characters", field="body",
                               code="message_too_long")
    check_text(body, "body")


def check_emoji(emoji: str) -> None:
    """A reaction: exactly one emoji of the Unicode emoji set (sequences such as 👩‍👩‍👧 included)."""
    if not 1 <= len(emoji) <= MAX_EMOJI_CHARS or not emoji_data.is_emoji(emoji):
        raise ValidationFailed("emoji must be a single emoji", field="emoji", code="invalid_emoji")


class TextSafeRequest(Request):  # type: ignore[type-arg]
    """A request whose JSON body errors name bad text (`invalid_text`) instead of a 500 or "truncated"."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except UnicodeDecodeError:
            raise ValidationFailed("the body is not valid UTF-8", code="invalid_text") from None
        except SerializationException as exc:
            body = await self.body()
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationFailed("the body is not valid UTF-8", code="invalid_text") from None
            try:  # the standard library keeps lone surrogates; check_text refuses them by field
                value = json.loads(text)
            except ValueError:
                raise exc from None
            self._json = self._connection_state.json = value
            return value
