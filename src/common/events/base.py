"""The base of every integration event and the registry that decodes them by name."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, TypeVar

import msgspec

from src.common.clock import utcnow
from src.common.ids import new_id

_REGISTRY: dict[str, type[Event]] = {}
E = TypeVar("E", bound="Event")


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """Something that happened. Subclasses set `name` ("users.user_registered.v1")."""

    name: ClassVar[str] = ""
    event_id: uuid.UUID = msgspec.field(default_factory=new_id)
    occurred_at: datetime = msgspec.field(default_factory=utcnow)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.name:
            raise TypeError(f"{cls.__qualname__} must set a versioned `name`")
        if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
            raise TypeError(f"event name {cls.name!r} is used twice")
        _REGISTRY[cls.name] = cls

    def to_payload(self) -> dict[str, Any]:
        """The event as JSON-ready builtins (for the outbox)."""
        payload: dict[str, Any] = msgspec.to_builtins(self)
        return payload


def event_type(name: str) -> type[Event]:
    """The event class registered under `name` (KeyError when unknown)."""
    return _REGISTRY[name]


def decode_event(name: str, payload: dict[str, Any]) -> Event:
    """Rebuild an event from its outbox row."""
    return msgspec.convert(payload, type=event_type(name))
