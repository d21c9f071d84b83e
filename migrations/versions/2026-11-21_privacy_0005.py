"""privacy: per-user privacy settings (rows only for users who changed a default)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
    CREATE SCHEMA IF NOT EXISTS privacy;
    CREATE TABLE privacy.settings (
        user_id uuid NOT NULL,
        who_can_message varchar(10) NOT NULL DEFAULT 'everyone',
        who_can_call varchar(10) NOT NULL DEFAULT 'everyone',
        profile_visibility varchar(10) NOT NULL DEFAULT 'everyone',
        show_last_seen boolean NOT NULL DEFAULT true,
        read_receipts boolean NOT NULL DEFAULT true,
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_settings PRIMARY KEY (user_id),
        CONSTRAINT ck_settings_who_can_message
            CHECK (who_can_message IN ('everyone', 'friends', 'nobody')),
        CONSTRAINT ck_settings_who_can_call
            CHECK (who_can_call IN ('everyone', 'friends', 'nobody')),
        CONSTRAINT ck_settings_profile_visibility
            CHECK (profile_visibility IN ('everyone', 'friends', 'nobody'))
    );
    """


def upgrade() -> None:
    for statement in UPGRADE.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP SCHEMA privacy CASCADE")
