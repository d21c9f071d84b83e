"""Make the served OpenAPI document tell the truth about failures.

Every operation can answer with a problem (`application/problem+json`, RFC 9457): Litestar only
documents its own 400 shape, so each operation is given the problems it can produce —
400 (input), 401 (credentials), 429 (limits) and 503 (a backing service away) everywhere;
403 and 404 when a token is required (public operations declare `security=[{}]`); 409 on
writes; 413 when there is a body. Applied to the whole document, so routes added by any module
are covered without declaring anything.
"""

from __future__ import annotations

from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)

PROBLEM_JSON = "application/problem+json"
_DESCRIPTIONS = {
    "400": "Invalid input (the problem's `field` names it)",
    "401": "Missing, invalid, expired or revoked access token",
    "403": "Not allowed (blocked, privacy settings, not the author …)",
    "404": "No such resource, or one the caller may not see",
    "409": "Conflicts with the current state",
    "413": "The body is too large",
    "429": "Rate limited: retry after `Retry-After` seconds",
    "503": "A backing service is unavailable (`unavailable`) or the server is too busy (`overloaded`): "
           "retry after `Retry-After` seconds",
}
_RETRY_AFTER: dict[str, OpenAPIHeader | Reference] = {
    "Retry-After": OpenAPIHeader(schema=Schema(type=OpenAPIType.INTEGER), description="seconds")}

PROBLEM_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["type", "title", "status", "detail", "code"],
    properties={
        "type": Schema(type=OpenAPIType.STRING),
        "title": Schema(type=OpenAPIType.STRING),
        "status": Schema(type=OpenAPIType.INTEGER),
        "detail": Schema(type=OpenAPIType.STRING),
        "code": Schema(type=OpenAPIType.STRING, description="stable machine-readable code"),
        "field": Schema(type=OpenAPIType.STRING, description="the offending input, when one is"),
    },
    description="RFC 9457 problem details",
)


def _problem(status: str) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=_DESCRIPTIONS[status],
        headers=_RETRY_AFTER if status in ("429", "503") else None,
        content={PROBLEM_JSON: OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Problem"))})


def _statuses(method: str, operation: Operation, global_security: bool) -> list[str]:
    statuses = ["400", "401", "429", "503"]  # public operations check credentials too (sign-in, refresh)
    requirements = operation.security if operation.security is not None else ([{}] if not global_security else None)
    if requirements is None or any(requirements):  # `[{}]`: anonymous access
        statuses += ["403", "404"]
    if method != "get":
        statuses.append("409")
    if operation.request_body is not None:
        statuses.append("413")
    return statuses


def document_problems(document: OpenAPI) -> OpenAPI:
    """Add the Problem schema and each operation's problem responses (replacing Litestar's 400)."""
    if document.components.schemas is None:
        document.components.schemas = {}
    document.components.schemas["Problem"] = PROBLEM_SCHEMA
    for path_item in (document.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation: Operation | None = getattr(path_item, method, None)
            if operation is None:
                continue
            if operation.responses is None:
                operation.responses = {}
            for status in _statuses(method, operation, bool(document.security)):
                operation.responses[status] = _problem(status)
    return document
