"""messaging: conversations, members, messages, reactions, hidden messages, the sync change log

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
    CREATE SCHEMA IF NOT EXISTS messaging;
    CREATE TABLE messaging.conversations (
        id uuid PRIMARY KEY,
        kind varchar(10) NOT NULL CONSTRAINT ck_conversations_kind CHECK (kind IN ('direct', 'group')),
        direct_key varchar(80) CONSTRAINT uq_conversations_direct_key UNIQUE,
        name varchar(100),
        description varchar(500),
        owner_id uuid,
        created_by uuid NOT NULL,
        last_seq bigint NOT NULL DEFAULT 0,
        read_only boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        activity_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE messaging.members (
        conversation_id uuid NOT NULL REFERENCES messaging.conversations (id) ON DELETE CASCADE,
        user_id uuid NOT NULL,
        role varchar(10) NOT NULL DEFAULT 'member',
        joined_at timestamptz NOT NULL DEFAULT now(),
        last_read_seq bigint NOT NULL DEFAULT 0,
        last_delivered_seq bigint NOT NULL DEFAULT 0,
        public_read_seq bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (conversation_id, user_id)
    );
    CREATE INDEX ix_members_user_id ON messaging.members (user_id, conversation_id);
    CREATE TABLE messaging.messages (
        id uuid PRIMARY KEY,
        conversation_id uuid NOT NULL REFERENCES messaging.conversations (id) ON DELETE CASCADE,
        seq bigint NOT NULL,
        sender_id uuid NOT NULL,
        sender_deleted boolean NOT NULL DEFAULT false,
        client_msg_id varchar(64) NOT NULL,
        body text,
        media_ids uuid[] NOT NULL DEFAULT '{}',
        reply_to uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        edited_at timestamptz,
        deleted_at timestamptz,
        search tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(body, ''))) STORED,
        CONSTRAINT uq_messages_conversation_seq UNIQUE (conversation_id, seq),
        CONSTRAINT uq_messages_client_msg UNIQUE (conversation_id, sender_id, client_msg_id)
    );
    CREATE INDEX ix_messages_search ON messaging.messages USING gin (search);
    CREATE INDEX ix_messages_sender_id ON messaging.messages (sender_id);
    CREATE TABLE messaging.reactions (
        message_id uuid NOT NULL REFERENCES messaging.messages (id) ON DELETE CASCADE,
        user_id uuid NOT NULL,
        emoji varchar(64) NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (message_id, user_id, emoji)
    );
    CREATE INDEX ix_reactions_user_id ON messaging.reactions (user_id);
    CREATE TABLE messaging.hidden_messages (
        message_id uuid NOT NULL REFERENCES messaging.messages (id) ON DELETE CASCADE,
        user_id uuid NOT NULL,
        conversation_id uuid NOT NULL,
        hidden_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (message_id, user_id)
    );
    CREATE INDEX ix_hidden_messages_user_id ON messaging.hidden_messages (user_id);
    CREATE TABLE messaging.sync_heads (
        user_id uuid PRIMARY KEY,
        position bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE messaging.changes (
        user_id uuid NOT NULL,
        position bigint NOT NULL,
        type varchar(40) NOT NULL,
        conversation_id uuid,
        payload jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, position)
    );
    CREATE INDEX ix_changes_created_at ON messaging.changes USING brin (created_at);
    """


def upgrade() -> None:
    for statement in UPGRADE.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP SCHEMA messaging CASCADE")
