"""calls: history of ended calls and their participants

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
    CREATE SCHEMA IF NOT EXISTS calls;
    CREATE TABLE calls.calls (
        id uuid PRIMARY KEY,
        kind varchar(10) NOT NULL CONSTRAINT ck_calls_kind CHECK (kind IN ('direct', 'group')),
        media varchar(10) NOT NULL CONSTRAINT ck_calls_media CHECK (media IN ('audio', 'video')),
        conversation_id uuid,
        caller_id uuid NOT NULL,
        end_reason varchar(20) NOT NULL,
        created_at timestamptz NOT NULL,
        answered_at timestamptz,
        ended_at timestamptz NOT NULL,
        duration_s integer
    );
    CREATE TABLE calls.participants (
        call_id uuid NOT NULL REFERENCES calls.calls (id) ON DELETE CASCADE,
        user_id uuid NOT NULL,
        position integer NOT NULL,
        state varchar(12) NOT NULL,
        joined_at timestamptz,
        left_at timestamptz,
        created_at timestamptz NOT NULL,
        PRIMARY KEY (call_id, user_id)
    );
    CREATE INDEX ix_participants_user_history ON calls.participants (user_id, created_at DESC, call_id DESC);
"""


def upgrade() -> None:
    for statement in UPGRADE.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS calls CASCADE")
