"""notifications: fillfactor 80, so that claiming a push (pushed_version) is a HOT update

Rows are inserted into full pages; the push claim then rewrote each row on a new page and added
an entry to each of the table's four indexes (about 6 WAL records per row). With room left on
each page the update stays on its page and touches no index (no indexed column changes). Only
pages written from now on leave the room.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE notifications.notifications SET (fillfactor = 80)")


def downgrade() -> None:
    op.execute("ALTER TABLE notifications.notifications RESET (fillfactor)")
