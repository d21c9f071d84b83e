"""Dependencies resolved one after another when only one of them can wait.

Litestar resolves the independent dependencies of a handler concurrently, in an anyio task group
(a task per dependency), whenever there are several. Ours are one awaiting dependency (the
principal) beside constant services (`Provide(lambda: service)`): the task group was ~7 % of an
authenticated read's CPU (issue 8) and bought nothing. Batches holding at most one dependency that
can wait are split so they run inline; batches with several keep Litestar's concurrency.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar


def _waits(container: Any) -> bool:
    provide = container.provide
    return not provide.has_sync_callable or provide.sync_to_thread or provide.has_sync_generator_dependency \
        or provide.has_async_generator_dependency


def resolve_inline_when_possible(app: Litestar) -> int:
    """Split every dependency batch with at most one waiting dependency; how many were split."""
    split = 0
    for route in app.routes:
        for entry in getattr(route, "route_handler_map", {}).values():
            model = entry[1] if isinstance(entry, tuple) else None
            batches = getattr(model, "dependency_batches", None)
            if not batches:
                continue
            flattened: list[set[Any]] = []
            for batch in batches:
                if len(batch) > 1 and sum(_waits(d) for d in batch) <= 1:
                    flattened.extend({d} for d in sorted(batch, key=_waits))  # the waiting one last
                    split += 1
                else:
                    flattened.append(batch)
            model.dependency_batches = flattened  # type: ignore[union-attr]
    return split
