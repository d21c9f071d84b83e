"""groups (roles, join policy, join seq, join requests, the message stream of groups) and presence (last seen)

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
    ALTER TABLE messaging.conversations ALTER COLUMN description TYPE varchar(1000);
    ALTER TABLE messaging.conversations ADD COLUMN join_policy varchar(12) NOT NULL DEFAULT 'invite_only'
        CONSTRAINT ck_conversations_join_policy CHECK (join_policy IN ('invite_only', 'request'));
    ALTER TABLE messaging.members ADD COLUMN joined_seq bigint NOT NULL DEFAULT 0;
    ALTER TABLE messaging.members ADD CONSTRAINT ck_members_role CHECK (role IN ('owner', 'admin', 'member'));
    CREATE UNIQUE INDEX uq_members_one_owner ON messaging.members (conversation_id) WHERE role = 'owner';
    CREATE TABLE messaging.join_requests (
        id uuid PRIMARY KEY,
        conversation_id uuid NOT NULL REFERENCES messaging.conversations (id) ON DELETE CASCADE,
        user_id uuid NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE UNIQUE INDEX uq_join_requests_pending ON messaging.join_requests (conversation_id, user_id);
    CREATE INDEX ix_join_requests_user_id ON messaging.join_requests (user_id);
    ALTER TABLE messaging.messages ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
    CREATE INDEX ix_messages_conversation_xid ON messaging.messages (conversation_id, xid);
    CREATE SCHEMA IF NOT EXISTS presence;
    CREATE TABLE presence.last_seen (
        user_id uuid PRIMARY KEY,
        last_seen_at timestamptz NOT NULL
    );
    """

DOWNGRADE = """
    DROP SCHEMA presence CASCADE;
    DROP TABLE messaging.join_requests;
    DROP INDEX messaging.ix_messages_conversation_xid;
    ALTER TABLE messaging.messages DROP COLUMN xid;
    DROP INDEX messaging.uq_members_one_owner;
    ALTER TABLE messaging.members DROP CONSTRAINT ck_members_role;
    ALTER TABLE messaging.members DROP COLUMN joined_seq;
    ALTER TABLE messaging.conversations DROP COLUMN join_policy;
    ALTER TABLE messaging.conversations ALTER COLUMN description TYPE varchar(500);
    """


def _run(script: str) -> None:
    for statement in script.split(";\n"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
