"""notifications: notifications, sources (idempotency), preferences, devices; messaging.mutes

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
    CREATE SCHEMA IF NOT EXISTS notifications;
    CREATE TABLE notifications.notifications (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL,
        kind varchar(20) NOT NULL,
        actor_id uuid NOT NULL,
        actor_ids uuid[] NOT NULL DEFAULT '{}',
        actor_count integer NOT NULL DEFAULT 1,
        event_count integer NOT NULL DEFAULT 1,
        subject_id uuid,
        subject_seq bigint,
        collapse_key varchar(200),
        data jsonb NOT NULL DEFAULT '{}',
        in_app boolean NOT NULL,
        push boolean NOT NULL,
        email boolean NOT NULL,
        version integer NOT NULL DEFAULT 1,
        pushed_version integer NOT NULL DEFAULT 0,
        emailed_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        read_at timestamptz
    );
    CREATE INDEX ix_notifications_list ON notifications.notifications (user_id, updated_at DESC, id DESC)
        WHERE in_app;
    CREATE INDEX ix_notifications_unread ON notifications.notifications (user_id, collapse_key)
        WHERE read_at IS NULL;
    CREATE INDEX ix_notifications_subject ON notifications.notifications (user_id, subject_id)
        WHERE read_at IS NULL;
    CREATE TABLE notifications.sources (
        user_id uuid NOT NULL,
        event_id uuid NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, event_id)
    );
    CREATE INDEX ix_sources_created_at ON notifications.sources USING brin (created_at);
    CREATE TABLE notifications.preferences (
        user_id uuid PRIMARY KEY,
        channels jsonb NOT NULL DEFAULT '{}',
        show_previews boolean NOT NULL DEFAULT true,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE notifications.devices (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL,
        platform varchar(10) NOT NULL CONSTRAINT ck_devices_platform CHECK (platform IN ('fcm', 'webpush')),
        token text NOT NULL,
        token_hash bytea NOT NULL CONSTRAINT uq_devices_token_hash UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX ix_devices_user_id ON notifications.devices (user_id);
    CREATE TABLE messaging.mutes (
        conversation_id uuid NOT NULL,
        user_id uuid NOT NULL,
        muted_until timestamptz,
        PRIMARY KEY (conversation_id, user_id)
    )
    """


def upgrade() -> None:
    for statement in UPGRADE.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE messaging.mutes")
    op.execute("DROP SCHEMA notifications CASCADE")
