"""Integration events: immutable facts one module publishes and any module may hear.

Every event is a frozen msgspec Struct with a versioned `name`, an `event_id` and an
`occurred_at`; fields are primitives. Changing a field means a new version (a new class).
"""

from src.common.events.base import Event, event_type

__all__ = ["Event", "event_type"]
