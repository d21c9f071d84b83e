"""friendship: pending friend requests and friendships

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A pair of users has at most one pending request and one friendship, whoever asked first:
# both are unique on the unordered pair (requests by least/greatest, friendships are stored
# once with user_a < user_b). Resolved requests are deleted, so the table holds pending ones.
UPGRADE = """
    CREATE SCHEMA IF NOT EXISTS friendship;
    CREATE TABLE friendship.friend_requests (
        id uuid PRIMARY KEY,
        from_user_id uuid NOT NULL,
        to_user_id uuid NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT ck_friend_requests_not_self CHECK (from_user_id <> to_user_id)
    );
    CREATE UNIQUE INDEX uq_friend_requests_pair
        ON friendship.friend_requests (least(from_user_id, to_user_id), greatest(from_user_id, to_user_id));
    CREATE INDEX ix_friend_requests_incoming ON friendship.friend_requests (to_user_id, created_at DESC, id DESC);
    CREATE INDEX ix_friend_requests_outgoing ON friendship.friend_requests (from_user_id, created_at DESC, id DESC);
    CREATE TABLE friendship.friendships (
        user_a uuid NOT NULL,
        user_b uuid NOT NULL,
        requester_id uuid NOT NULL,
        request_id uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_friendships PRIMARY KEY (user_a, user_b),
        CONSTRAINT ck_friendships_ordered CHECK (user_a < user_b)
    );
    CREATE INDEX ix_friendships_a_recent ON friendship.friendships (user_a, created_at DESC, user_b DESC);
    CREATE INDEX ix_friendships_b_recent ON friendship.friendships (user_b, created_at DESC, user_a DESC);
    """


def upgrade() -> None:
    for statement in UPGRADE.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP SCHEMA friendship CASCADE")
