"""Prometheus metrics of one process (request latency comes from Litestar's middleware)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OUTBOX_BACKLOG = Gauge("chatty_outbox_backlog", "Outbox events not yet delivered")
OUTBOX_DEAD = Gauge("chatty_outbox_dead_rows", "Outbox events given up on")
OUTBOX_DEAD_TOTAL = Counter("chatty_outbox_marked_dead", "Outbox events marked dead by this process")
OUTBOX_ERRORS = Counter("chatty_outbox_errors_total", "Failures recording outbox delivery outcomes")
SOCKET_CONNECTIONS = Gauge("chatty_socket_connections", "Socket.IO connections on this process")
REDIS_FALLBACKS = Counter("chatty_redis_fallbacks_total", "Reads answered from PostgreSQL: Redis failed",
                          ["what"])
LISTENER_FAILURES = Counter("chatty_listener_failures_total", "Event listener runs that raised", ["listener"])
DISPATCH_DROPPED = Counter("chatty_dispatch_dropped_total",
                           "Committed events the dispatcher queue had no room for (the relay delivers them)")
