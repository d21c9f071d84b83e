"""Prometheus metrics of one process (request latency comes from Litestar's middleware).

With `chatty api --workers N` every process writes its metrics under `PROMETHEUS_MULTIPROC_DIR`
(set by the CLI before any process imports prometheus_client) and `/metrics`, whichever process
serves it, aggregates them all (`registry()`).
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess

# Read from PostgreSQL at scrape time: every process sees the same value, so report the latest.
OUTBOX_BACKLOG = Gauge("chatty_outbox_backlog", "Outbox events not yet delivered", multiprocess_mode="mostrecent")
OUTBOX_DEAD = Gauge("chatty_outbox_dead_rows", "Outbox events given up on", multiprocess_mode="mostrecent")
OUTBOX_DEAD_TOTAL = Counter("chatty_outbox_marked_dead", "Outbox events marked dead by this process")
OUTBOX_ERRORS = Counter("chatty_outbox_errors_total", "Failures recording outbox delivery outcomes")
SOCKET_CONNECTIONS = Gauge("chatty_socket_connections", "Socket.IO connections", multiprocess_mode="livesum")
REDIS_FALLBACKS = Counter("chatty_redis_fallbacks_total", "Reads answered from PostgreSQL: Redis failed",
                          ["what"])
LISTENER_FAILURES = Counter("chatty_listener_failures_total", "Event listener runs that raised", ["listener"])
DISPATCH_DROPPED = Counter("chatty_dispatch_dropped_total",
                           "Committed events the dispatcher queue had no room for (the relay delivers them)")
DISPATCH_BACKLOG = Gauge("chatty_dispatch_backlog", "Committed events waiting for a listener task",
                         multiprocess_mode="livesum")
ADMISSION_REFUSED = Counter("chatty_admission_refused_total", "Work refused as `overloaded` (src/infra/admission.py)",
                            ["kind", "reason"])
EMITS_UNPUBLISHED = Counter("chatty_socket_emits_unpublished_total",
                            "Emits delivered to local sockets only: no other API process listens (src/socket/peers.py)")
LOOP_LAG = Histogram("chatty_event_loop_lag_seconds", "How late the event loop woke a 50 ms timer",
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
SCRAPE_ERRORS = Counter("chatty_metrics_scrape_errors_total", "Values /metrics could not read", ["what"])


def registry() -> CollectorRegistry:
    """What /metrics serves: this process, or every process of the API in multiprocess mode."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    aggregated = CollectorRegistry()
    multiprocess.MultiProcessCollector(aggregated)
    return aggregated
