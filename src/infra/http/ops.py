"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

import structlog
from litestar import Request, Response, get
from litestar.exceptions import NotAuthorizedException, NotFoundException
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from src.infra import metrics
from src.infra.context import AppContext
from src.infra.outbox import outbox_counts
from src.infra.redis import redis_alive

log = structlog.get_logger("chatty.ops")


@get("/health/live", sync_to_thread=False, include_in_schema=False)
def live() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def _postgres_alive(ctx: AppContext) -> bool:
    try:
        async with asyncio.timeout(2), ctx.db.session() as session:
            await session.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@get("/health/ready", include_in_schema=False)
async def ready(request: Request) -> Response[dict[str, Any]]:
    """Ready when PostgreSQL and Redis both answer; 503 naming what is down otherwise."""
    ctx: AppContext = request.app.state.ctx
    postgres, redis = await asyncio.gather(_postgres_alive(ctx), redis_alive(ctx.redis))
    checks = {"postgres": "ok" if postgres else "down", "redis": "ok" if redis else "down"}
    ok = postgres and redis
    return Response({"status": "ok" if ok else "unavailable", "checks": checks},
                    status_code=200 if ok else 503)


@get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response[bytes]:
    """Prometheus metrics, with the outbox gauges read at scrape time, for holders of METRICS_TOKEN
    (a bearer token); without that setting the endpoint does not exist."""
    ctx: AppContext = request.app.state.ctx
    expected = ctx.settings.metrics_token
    if not expected:
        raise NotFoundException("metrics are not served (METRICS_TOKEN is unset)")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise NotAuthorizedException("a bearer METRICS_TOKEN is required")
    try:
        backlog, dead = await outbox_counts(ctx.db)
        metrics.OUTBOX_BACKLOG.set(backlog)
        metrics.OUTBOX_DEAD.set(dead)
    except Exception as exc:  # the other metrics are still worth serving; say why these are stale
        metrics.SCRAPE_ERRORS.labels("outbox_counts").inc()
        log.warning("metrics.outbox_counts_failed", error=repr(exc))
    metrics.DISPATCH_BACKLOG.set(ctx.bus.dispatcher.backlog)
    return Response(generate_latest(metrics.registry()), headers={"Content-Type": CONTENT_TYPE_LATEST})
