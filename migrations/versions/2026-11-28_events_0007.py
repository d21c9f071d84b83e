"""Events: unique constraints named as the models name them (so schema drift cannot hide).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE auth.sessions RENAME CONSTRAINT sessions_refresh_hash_key TO uq_sessions_refresh_hash")
    op.execute("ALTER TABLE infra.outbox RENAME CONSTRAINT outbox_event_id_key TO uq_outbox_event_id")


def downgrade() -> None:
    op.execute("ALTER TABLE infra.outbox RENAME CONSTRAINT uq_outbox_event_id TO outbox_event_id_key")
    op.execute("ALTER TABLE auth.sessions RENAME CONSTRAINT uq_sessions_refresh_hash TO sessions_refresh_hash_key")
