"""Composition root of an API process: Litestar (REST) and Socket.IO in one ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import socketio
from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig

from src.bootstrap import MODULES, build_context
from src.infra.admission import Admission
from src.infra.config import get_settings
from src.infra.http.dependencies import resolve_inline_when_possible
from src.infra.http.input_guard import input_guard
from src.infra.http.openapi import document_problems
from src.infra.http.ops import live, metrics_endpoint, ready
from src.infra.http.overload import admission_guard
from src.infra.http.principal import current_principal
from src.infra.http.problems import EXCEPTION_HANDLERS
from src.infra.http.raw_routes import raw_routes
from src.infra.http.request_context import request_context_middleware
from src.infra.http.request_metrics import RequestMetrics
from src.infra.http.security_headers import security_headers
from src.infra.logging import configure_logging
from src.infra.outbox import OutboxRelay
from src.socket.emitter import SocketRealtime
from src.socket.server import SocketGateway, create_socket_server


def create_asgi_app() -> Any:
    """Build the whole API process: settings, context, modules, REST, sockets, relay."""
    settings = get_settings()
    configure_logging(settings.log_level)
    sio = create_socket_server(settings.redis_url, settings.cors_origin_list)
    ctx = build_context(settings, lambda redis: SocketRealtime(
        sio.emit, redis, enter_room=sio.enter_room, leave_room=sio.leave_room))
    admission = Admission.from_settings(settings)
    gateway = SocketGateway(sio, ctx.queries, ctx.redis, settings.socket_event_limit, admission,
                            refuse_upgrades=settings.admission_refuse_connects)
    relay = OutboxRelay(ctx.db, ctx.bus, interval=settings.outbox_relay_interval)

    route_handlers: list[Any] = []
    startup_hooks: list[Any] = []
    shutdown_hooks: list[Any] = []
    for module in MODULES:
        parts = module.build(ctx)
        route_handlers.extend(parts.route_handlers)
        startup_hooks.extend(parts.on_startup)
        shutdown_hooks.extend(parts.on_shutdown)
        for event, handler in parts.socket_handlers.items():
            gateway.register(event, handler)
        gateway.add_lifecycle(parts.on_socket_connect, parts.on_socket_disconnect)

    async def on_startup(app: Litestar) -> None:
        app.state.ctx = ctx
        document_problems(app.openapi_schema)
        gateway.start()
        for hook in startup_hooks:
            hook()
        admission.start()
        if settings.run_outbox_relay:
            relay.start()

    async def on_shutdown(_: Litestar) -> None:
        await relay.stop()
        # Let queued listeners finish briefly; what is left, the relay of a live process delivers.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.bus.drain(), 5)
        await gateway.stop()
        for stop in shutdown_hooks:
            await stop()
        await admission.stop()
        await ctx.redis.aclose()
        await ctx.db.dispose()

    api = Router(path="/api/v1", route_handlers=route_handlers)
    app = Litestar(
        route_handlers=[api, live, ready, metrics_endpoint],
        dependencies={"principal": Provide(current_principal)},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[security_headers(settings.max_header_bytes), admission_guard(admission), request_context_middleware,
                    input_guard(settings.max_body_bytes),
                    PrometheusConfig(app_name="chatty", prefix="chatty", group_path=True,
                                     exclude=["/metrics", "/health"], middleware_class=RequestMetrics).middleware,
                    raw_routes],
        cors_config=CORSConfig(allow_origins=settings.cors_origin_list, allow_credentials=False,
                               allow_headers=["Authorization", "Content-Type", "Idempotency-Key",
                                              "X-Request-ID"]) if settings.cors_origin_list else None,
        openapi_config=OpenAPIConfig(
            title="Chatty", version="1.0.0", path="/schema", use_handler_docstrings=True,
            components=Components(security_schemes={"BearerToken": SecurityScheme(
                type="http", scheme="bearer", bearer_format="JWT")}),
            security=[{"BearerToken": []}],
        ),
        on_startup=[on_startup], on_shutdown=[on_shutdown],
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )
    app.state.ctx = ctx
    resolve_inline_when_possible(app)
    return socketio.ASGIApp(sio, other_asgi_app=app, socketio_path="socket.io")
