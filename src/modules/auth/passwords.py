"""Password rules and hashing: argon2id (OWASP parameters), computed off the event loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from src.common.errors import ValidationFailed

MIN_LENGTH, MAX_LENGTH = 8, 128
# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# The 10,000 most common passwords of zxcvbn's maintained list (OWASP ASVS 6.2.4).
COMMON_PASSWORDS = frozenset(FREQUENCY_LISTS["passwords"][:10_000])
# Hashing releases the GIL: a small pool keeps sign-ins off the event loop without
# letting a burst of them take every core.
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")
# Verified against when the account does not exist, so both failures take as long.
_DUMMY_HASH = HASHER.hash("chatty-dummy-password-for-timing")


def check_password_rules(password: str, *, field: str = "password", username: str | None = None) -> None:
    """Refuse passwords that are too short, too long, or among the most common."""
    if len(password) < MIN_LENGTH:
        raise ValidationFailed(f"{field} must have at least {MIN_LENGTH} characters", field=field,
                               code="password_too_short")
    if len(password) > MAX_LENGTH:
        raise ValidationFailed(f"{field} must have at most {MAX_LENGTH} characters", field=field,
                               code="password_too_long")
    if password.lower() in COMMON_PASSWORDS or (username and password.lower() == username.lower()):
        raise ValidationFailed(f"{field} is too common; choose another", field=field,
                               code="password_too_common")


async def hash_password(password: str) -> str:
    """The argon2id hash of `password`."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, HASHER.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; an absent hash costs the same time and fails."""
    ok = await asyncio.get_running_loop().run_in_executor(
        _POOL, _verify, password_hash or _DUMMY_HASH, password)
    return ok and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's."""
    return HASHER.check_needs_rehash(password_hash)
