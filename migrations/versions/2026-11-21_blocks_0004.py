"""blocks: who blocked whom

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
    CREATE SCHEMA IF NOT EXISTS blocks;
    CREATE TABLE blocks.blocks (
        blocker_id uuid NOT NULL,
        blocked_id uuid NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_blocks PRIMARY KEY (blocker_id, blocked_id),
        CONSTRAINT ck_blocks_not_self CHECK (blocker_id <> blocked_id)
    );
    CREATE INDEX ix_blocks_blocked_id ON blocks.blocks (blocked_id);
    CREATE INDEX ix_blocks_blocker_created ON blocks.blocks (blocker_id, created_at, blocked_id);
    """


def upgrade() -> None:
    for statement in UPGRADE.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP SCHEMA blocks CASCADE")
