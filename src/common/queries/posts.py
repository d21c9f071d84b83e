"""Queries about posts, answered by the posts module."""

from __future__ import annotations

import uuid

from src.common.queries.base import Query


class CanViewPost(Query[bool], frozen=True):
    """Whether `viewer_id` may see post `post_id` (privacy and blocks applied; false when it is gone)."""

    viewer_id: uuid.UUID
    post_id: uuid.UUID
