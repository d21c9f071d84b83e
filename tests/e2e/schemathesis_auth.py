"""Schemathesis hooks (`SCHEMATHESIS_HOOKS`): every generated request carries a live access token.

A fresh account is signed up at most once a second: the fuzzer also calls sign-out, which
revokes the token in hand; the next refresh brings a working one again.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import httpx
import schemathesis

PASSWORD = "Correct-Horse-Battery-9"


@schemathesis.auth(refresh_interval=1)
class FreshAccount:
    def get(self, case: Any, context: Any) -> str:
        name = f"st{uuid.uuid4().hex[:12]}"
        response = httpx.post(f"{os.environ['CHATTY_ST_API']}/api/v1/auth/signup", timeout=15,
                              json={"username": name, "email": f"{name}@example.com", "password": PASSWORD})
        response.raise_for_status()
        return str(response.json()["access_token"])

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
