"""Request and response bodies of the auth API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from src.common.validation import full_match

Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class SignUp(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=3, max_length=32, pattern=full_match(r"[A-Za-z0-9_.]+"),
                                          description="3-32 letters, digits, _ or .")]
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
    password: Password
    display_name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class SignIn(msgspec.Struct, forbid_unknown_fields=True):
    login: Annotated[str, msgspec.Meta(min_length=1, max_length=254, description="username or email")]
    password: Password
    device_name: Annotated[str, msgspec.Meta(max_length=100)] | None = None


class Refresh(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ChangePassword(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Password
    new_password: Password


class ForgotPassword(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]


class ResetPassword(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    password: Password


class Account(msgspec.Struct):
    id: uuid.UUID
    username: str
    email: str
    display_name: str | None = None


class Tokens(msgspec.Struct):
    user: Account
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


class SessionView(msgspec.Struct):
    id: uuid.UUID
    device_name: str | None
    created_at: datetime
    last_used_at: datetime
    current: bool
