"""Local stand-ins for the push services, speaking their protocols, each in its own thread.

- `FakeFcm`: FCM HTTP v1 (`POST /v1/projects/{project}/messages:send`) and the OAuth2 token
  endpoint a service account's `token_uri` points at (`POST /token`, a signed JWT assertion,
  checked against the account's public key). Records every push; scripted answers per device token
  (`UNREGISTERED`, 429 with `Retry-After`, 500).
- `FakeWebPush`: a Web Push service that checks the VAPID `Authorization` header (ES256 JWT, audience,
  expiry, the expected public key) and decrypts the aes128gcm payload with the subscription's keys.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import tempfile
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import http_ece
import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from src.infra.local_services import HOST, free_port


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Push:
    """One push a fake service accepted."""

    at: float
    token: str  # FCM token, or the web push subscription id
    body: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        return self.body.get("data", self.body)  # type: ignore[no-any-return]


class _ThreadServer:
    """An aiohttp app on a free port, served by an event loop in a daemon thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.pushes: list[Push] = []
        self.attempts: dict[str, list[float]] = defaultdict(list)  # token → times of every request
        self.script: dict[str, deque[tuple[int, dict[str, str], Any]]] = defaultdict(deque)
        self.peers: set[tuple[str, int]] = set()  # client connections seen (keep-alive check)
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        raise NotImplementedError

    def start(self) -> _ThreadServer:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(self.app(), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, HOST, self.port, backlog=1024).start())
            ready.set()
            self._loop.run_forever()

        threading.Thread(target=run, daemon=True, name=type(self).__name__).start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def answer_next(self, token: str, status: int, headers: dict[str, str] | None = None, body: Any = None) -> None:
        """The next request for `token` gets this answer instead of a success."""
        self.script[token].append((status, headers or {}, body))

    def _scripted(self, token: str) -> web.Response | None:
        if self.script[token]:
            status, headers, body = self.script[token].popleft()
            return web.json_response(body or {}, status=status, headers=headers)
        return None

    def _seen(self, request: web.Request) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.add(tuple(peer[:2]))

    def for_token(self, token: str) -> list[Push]:
        return [p for p in self.pushes if p.token == token]

    async def wait_for(self, predicate: Callable[[Push], bool], timeout: float = 10) -> Push:  # noqa: ASYNC109
        """The first accepted push matching `predicate`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for push in list(self.pushes):
                if predicate(push):
                    return push
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching push within {timeout} s; got {[p.data for p in self.pushes]}")
            await asyncio.sleep(0.02)


class FakeFcm(_ThreadServer):
    """FCM HTTP v1 + OAuth2 token endpoint; write `credentials_file` for FCM_CREDENTIALS_FILE."""

    project_id = "chatty-test"

    def __init__(self) -> None:
        super().__init__()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public_key = key.public_key()
        self.issued: set[str] = set()
        self.token_requests = 0
        fd, self.credentials_file = tempfile.mkstemp(prefix="fcm-sa-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({
                "type": "service_account", "project_id": self.project_id, "private_key_id": "k1",
                "private_key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()).decode(),
                "client_email": "chatty@chatty-test.iam.gserviceaccount.com", "client_id": "1",
                "token_uri": f"{self.base_url}/token",
            }, f)

    def env(self) -> dict[str, str]:
        return {"FCM_PROJECT_ID": self.project_id, "FCM_CREDENTIALS_FILE": self.credentials_file,
                "FCM_ENDPOINT": self.base_url}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(str(form.get("assertion")), self._public_key, algorithms=["RS256"],
                                audience="https://oauth2.googleapis.com/token")  # google-auth always says so
        except jwt.PyJWTError as exc:
            return web.json_response({"error": "invalid_grant", "error_description": str(exc)}, status=400)
        assert "firebase.messaging" in claims.get("scope", ""), claims
        self.token_requests += 1
        token = f"ya29.fake-{uuid.uuid4().hex}"
        self.issued.add(token)
        return web.json_response({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    async def _send(self, request: web.Request) -> web.Response:
        self._seen(request)
        if request.match_info["project"] != self.project_id:
            return web.json_response({"error": {"code": 404, "status": "NOT_FOUND"}}, status=404)
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.issued:
            return web.json_response({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, status=401)
        body = await request.json()
        message = body["message"]
        token = message["token"]
        self.attempts[token].append(time.monotonic())
        scripted = self._scripted(token)
        if scripted is not None:
            return scripted
        assert all(isinstance(v, str) for v in message.get("data", {}).values()), "FCM data values are strings"
        self.pushes.append(Push(at=time.monotonic(), token=token, body=message))
        return web.json_response({"name": f"projects/{self.project_id}/messages/{uuid.uuid4().hex}"})

    def unregister_next(self, token: str) -> None:
        """FCM's answer for a token that is gone: 404 NOT_FOUND with errorCode UNREGISTERED."""
        self.answer_next(token, 404, body={"error": {"code": 404, "status": "NOT_FOUND", "message": "gone",
                                                     "details": [{"@type": "type.googleapis.com/google.firebase"
                                                                  ".fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})


@dataclass
class Subscription:
    """A browser's push subscription: its JSON (the device token) and its private keys."""

    id: str
    json: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes


class FakeWebPush(_ThreadServer):
    """A Web Push service: checks VAPID, decrypts payloads, records them by subscription id."""

    def __init__(self) -> None:
        super().__init__()
        vapid = ec.generate_private_key(ec.SECP256R1())
        self.vapid_private_key = b64url(vapid.private_numbers().private_value.to_bytes(32, "big"))
        self.vapid_public_key = b64url(vapid.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
        self.subscriptions: dict[str, Subscription] = {}
        self.rejected: list[str] = []

    def env(self) -> dict[str, str]:
        return {"VAPID_PRIVATE_KEY": self.vapid_private_key, "VAPID_SUBJECT": "mailto:ops@chatty.local"}

    def subscribe(self) -> Subscription:
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        sub_id = uuid.uuid4().hex
        public = key.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.UncompressedPoint)
        sub = Subscription(sub_id, json.dumps({"endpoint": f"{self.base_url}/push/{sub_id}",
                                               "keys": {"p256dh": b64url(public), "auth": b64url(auth)}}), key, auth)
        self.subscriptions[sub_id] = sub
        return sub

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/push/{sub}", self._push)
        return app

    def _check_vapid(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("vapid "):
            return "no vapid authorization"
        parts = dict(p.strip().split("=", 1) for p in header[len("vapid "):].split(","))
        if parts.get("k") != self.vapid_public_key:
            return "unexpected vapid key"
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(parts["k"]))
        try:
            claims = jwt.decode(parts.get("t", ""), public, algorithms=["ES256"], audience=self.base_url)
        except jwt.PyJWTError as exc:
            return f"bad vapid token: {exc}"
        if not str(claims.get("sub", "")).startswith("mailto:") or claims["exp"] > time.time() + 24 * 3600:
            return "bad vapid claims"
        return None

    async def _push(self, request: web.Request) -> web.Response:
        self._seen(request)
        sub_id = request.match_info["sub"]
        self.attempts[sub_id].append(time.monotonic())
        problem = self._check_vapid(request)
        if problem:
            self.rejected.append(problem)
            return web.Response(status=401, text=problem)
        scripted = self._scripted(sub_id)
        if scripted is not None:
            return scripted
        sub = self.subscriptions.get(sub_id)
        if sub is None:
            return web.Response(status=410)
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return web.Response(status=415)
        plain = http_ece.decrypt(await request.read(), private_key=sub.private_key, auth_secret=sub.auth,
                                 version="aes128gcm")
        self.pushes.append(Push(at=time.monotonic(), token=sub_id, body=json.loads(plain)))
        return web.Response(status=201)
