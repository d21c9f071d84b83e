"""How a business module plugs into the application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from src.common.auth import Principal
from src.infra.context import AppContext
from src.infra.loops import WorkerLoop
from src.infra.tasks import TaskSpec

# A socket event handler: (principal, socket id, payload) -> ack data (or raises AppError).
SocketHandler = Callable[[Principal, str, Any], Awaitable[Any]]
# Told when a socket of this process connects (after it joined its rooms) or disconnects.
SocketLifecycleHook = Callable[[Principal, str], Awaitable[None]]


@dataclass
class ModuleParts:
    """What a module contributes to an API process: routes and socket handlers."""

    route_handlers: list[Any] = field(default_factory=list)
    socket_handlers: dict[str, SocketHandler] = field(default_factory=dict)
    on_socket_connect: list[SocketLifecycleHook] = field(default_factory=list)
    on_socket_disconnect: list[SocketLifecycleHook] = field(default_factory=list)
    # Run when an API process starts serving and when it stops (background listeners).
    on_startup: list[Callable[[], Any]] = field(default_factory=list)
    on_shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


@dataclass(frozen=True)
class Module:
    """A business module: `build(ctx)` registers its listeners and query handlers and
    returns its parts (called once per process); `tasks` are its background actors."""

    name: str
    build: Callable[[AppContext], ModuleParts]
    tasks: list[TaskSpec] = field(default_factory=list)
    loops: list[WorkerLoop] = field(default_factory=list)  # rounds every worker process runs (loops.py)
