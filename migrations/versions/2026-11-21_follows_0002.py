"""follows: the follow edges

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
    CREATE SCHEMA IF NOT EXISTS follows;
    CREATE TABLE follows.follows (
        follower_id uuid NOT NULL,
        followee_id uuid NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_follows PRIMARY KEY (follower_id, followee_id),
        CONSTRAINT ck_follows_not_self CHECK (follower_id <> followee_id)
    );
    CREATE INDEX ix_follows_followers_recent ON follows.follows (followee_id, created_at DESC, follower_id DESC);
    CREATE INDEX ix_follows_following_recent ON follows.follows (follower_id, created_at DESC, followee_id DESC);
    """


def upgrade() -> None:
    for statement in UPGRADE.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP SCHEMA follows CASCADE")
