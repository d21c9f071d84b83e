"""Tables of the posts module (schema `posts`, created by migration 0012), as SQLAlchemy Core."""

from __future__ import annotations

from sqlalchemy import ARRAY, Column, DateTime, ForeignKey, Index, Integer, String, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID

from src.infra.db import Base

SCHEMA = "posts"
_meta = Base.metadata

posts = Table(
    "posts", _meta,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("author_id", UUID(as_uuid=True), nullable=False),
    Column("body", Text),
    Column("bg_color", String(9)),
    Column("feelings", String(20)),
    Column("gif_url", String(2048)),
    Column("media_ids", ARRAY(UUID(as_uuid=True)), nullable=False),
    Column("media_kinds", ARRAY(Text), nullable=False),  # kinds of the attached media (the `kind` filter)
    Column("privacy", String(10), nullable=False),
    Column("comment_count", Integer, nullable=False),
    # {type: n}; written only while the post row is locked, so it stays exact (reactions.py).
    Column("reaction_counts", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("edited_at", DateTime(timezone=True)),
    Column("search", TSVECTOR),  # generated: to_tsvector('simple', coalesce(body, '')); only compared with @@
    Index("ix_posts_author_recent", "author_id", text("created_at DESC"), text("id DESC")),
    Index("ix_posts_recent", text("created_at DESC"), text("id DESC")),
    Index("ix_posts_search", "search", postgresql_using="gin"),
    schema=SCHEMA,
)

comments = Table(
    "comments", _meta,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("post_id", UUID(as_uuid=True), ForeignKey("posts.posts.id", ondelete="CASCADE"), nullable=False),
    Column("author_id", UUID(as_uuid=True), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_comments_post", "post_id", "created_at", "id"),
    Index("ix_comments_author", "author_id"),
    schema=SCHEMA,
)

reactions = Table(
    "reactions", _meta,
    Column("post_id", UUID(as_uuid=True), ForeignKey("posts.posts.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("type", String(10), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_reactions_post_recent", "post_id", text("created_at DESC"), text("user_id DESC")),
    Index("ix_reactions_user_recent", "user_id", text("created_at DESC"), text("post_id DESC")),
    schema=SCHEMA,
)

# Authors whose posts were not fanned out (more than FEED_FANOUT_MAX_FOLLOWERS followers when they
# posted): feeds pull their posts from PostgreSQL at read time. A row stays once written, so
# no post of theirs is ever missing from both the timelines and the pull.
pull_authors = Table(
    "pull_authors", _meta,
    Column("author_id", UUID(as_uuid=True), primary_key=True),
    Column("marked_at", DateTime(timezone=True), nullable=False),
    schema=SCHEMA,
)
