"""Password rules (length in characters, common passwords) and hashing of Unicode passwords."""

from __future__ import annotations

import unicodedata

import pytest

from src.common.errors import ValidationFailed
from src.modules.auth.passwords import (
    MAX_LENGTH,
    MIN_LENGTH,
    check_password_rules,
    hash_password,
    verify_password,
)


def _refused(password: str, **kwargs: str) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        check_password_rules(password, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_length_is_counted_in_characters_not_bytes() -> None:
    # 8 two-byte characters: 16 bytes, but 8 characters: long enough.
    check_password_rules("ñ" * 4 + "ü" * 4)
    # 7 four-byte characters: 28 bytes, but 7 characters: too short.
    assert _refused("🔑" * 7).code == "password_too_short"
    # 128 emoji (512 bytes) is the maximum, not over it.
    check_password_rules("🔑🙂" * (MAX_LENGTH // 2))
    assert _refused("🔑" * (MAX_LENGTH + 1)).code == "password_too_long"


def test_bounds() -> None:
    assert MIN_LENGTH == 8
    error = _refused("x7#Kq2!")
    assert (error.code, error.field, error.status) == ("password_too_short", "password", 400)
    check_password_rules("x7#Kq2!z")


@pytest.mark.parametrize("password", ["password", "Password1", "12345678", "ILOVEYOU", "qwertyuiop"])
def test_common_passwords_are_refused_case_insensitively(password: str) -> None:
    assert _refused(password).code == "password_too_common"


def test_the_username_is_not_a_password() -> None:
    assert _refused("Marguerite_77", username="marguerite_77").code == "password_too_common"
    check_password_rules("Marguerite_77", username="someone_else")


def test_the_error_names_the_field_it_was_given() -> None:
    assert _refused("short", field="new_password").field == "new_password"


async def test_unicode_password_is_kept_exactly() -> None:
    password = "Ünïcødé-pässwörd-🔑"
    composed = unicodedata.normalize("NFC", password)
    decomposed = unicodedata.normalize("NFD", password)
    assert composed != decomposed
    stored = await hash_password(composed)
    assert await verify_password(stored, composed)
    assert not await verify_password(stored, decomposed)       # no normalization
    assert not await verify_password(stored, composed[:-1])    # no truncation
    assert not await verify_password(None, composed)           # unknown account always fails
