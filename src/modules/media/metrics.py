"""Prometheus metrics of the media module."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REMOVED_MEDIA = Counter("chatty_media_removed_total", "Media items removed", ["reason"])
REMOVED_OBJECTS = Counter("chatty_media_objects_removed_total", "Stored objects removed", ["reason"])
PROCESSED = Counter("chatty_media_processed_total", "Media processed by workers", ["kind", "status"])
PROCESSING_SECONDS = Histogram("chatty_media_processing_seconds", "Time to process one media item", ["kind"])
