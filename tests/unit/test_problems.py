"""Every failure becomes RFC 9457 problem details with a stable `code` (in-process Litestar app)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import msgspec
import pytest
from litestar import Litestar, get, post
from litestar.testing import TestClient

from src.common.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from src.infra.http.problems import EXCEPTION_HANDLERS, PROBLEM_JSON

ERRORS: dict[str, Exception] = {
    "validation": ValidationFailed("email is invalid", field="email", code="invalid_email"),
    "unauthorized": Unauthorized("no token"),
    "forbidden": Forbidden("not yours"),
    "not_found": NotFound("No such user", code="user_not_found"),
    "conflict": Conflict("username is already taken", code="username_taken", field="username"),
    "too_large": PayloadTooLarge("too big"),
    "rate_limited": RateLimited("slow down", retry_after=42),
    "crash": RuntimeError("secret internals"),
}


class Inner(msgspec.Struct, forbid_unknown_fields=True):
    url: str


class Body(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=3, max_length=32)]
    age: int = 0
    inner: Inner | None = None


@get("/raise/{name:str}", sync_to_thread=False)
def raise_error(name: str) -> None:
    raise ERRORS[name]


@post("/body", sync_to_thread=False)
def take_body(data: Body) -> dict[str, str]:
    return {"username": data.username}


@get("/query", sync_to_thread=False)
def take_query(limit: int | None = None) -> dict[str, Any]:
    return {"limit": limit}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Litestar]]:
    app = Litestar([raise_error, take_body, take_query], exception_handlers=EXCEPTION_HANDLERS,
                   request_max_body_size=1024, logging_config=None)
    with TestClient(app) as test_client:
        yield test_client


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(f"/{code}")
    assert body["title"] and body["detail"]
    return body


@pytest.mark.parametrize(("name", "status", "code", "field"), [
    ("validation", 400, "invalid_email", "email"),
    ("unauthorized", 401, "unauthorized", None),
    ("forbidden", 403, "forbidden", None),
    ("not_found", 404, "user_not_found", None),
    ("conflict", 409, "username_taken", "username"),
    ("too_large", 413, "payload_too_large", None),
    ("rate_limited", 429, "rate_limited", None),
])
def test_app_errors_keep_their_status_code_and_field(client: TestClient[Litestar], name: str, status: int,
                                                     code: str, field: str | None) -> None:
    body = _problem(client.get(f"/raise/{name}"), status, code)
    assert body.get("field") == field


def test_rate_limited_says_when_to_retry(client: TestClient[Litestar]) -> None:
    response = client.get("/raise/rate_limited")
    _problem(response, 429, "rate_limited")
    assert response.headers["retry-after"] == "42"


def test_unexpected_errors_are_a_bland_500(client: TestClient[Litestar]) -> None:
    body = _problem(client.get("/raise/crash"), 500, "internal_error")
    assert "secret internals" not in body["detail"]


def test_unknown_route_and_wrong_method(client: TestClient[Litestar]) -> None:
    _problem(client.get("/no/such/route"), 404, "route_not_found")
    response = client.delete("/body")
    _problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers.get("allow", "")


def test_oversize_body(client: TestClient[Litestar]) -> None:
    _problem(client.post("/body", json={"username": "x" * 2000}), 413, "payload_too_large")


def test_malformed_json(client: TestClient[Litestar]) -> None:
    _problem(client.post("/body", content=b'{"username": ', headers={"content-type": "application/json"}),
             400, "bad_request")


@pytest.mark.parametrize(("body", "field"), [
    ({"username": "ab"}, "username"),                         # constraint
    ({"username": "abc", "age": "old"}, "age"),               # type
    ({}, "username"),                                         # missing
    ({"username": "abc", "admin": True}, "admin"),            # unknown
    ({"username": "abc", "inner": {}}, "inner.url"),          # missing, nested
])
def test_body_validation_names_the_field(client: TestClient[Litestar], body: dict[str, Any],
                                         field: str) -> None:
    problem = _problem(client.post("/body", json=body), 400, "validation_failed")
    assert problem["field"] == field
    assert field in problem["detail"]


def test_query_validation_names_the_parameter(client: TestClient[Litestar]) -> None:
    assert _problem(client.get("/query?limit=many"), 400, "validation_failed")["field"] == "limit"
