"""Claiming alerts to push, on the driver connection: one statement, no transaction around it.

Through SQLAlchemy inside `BEGIN … COMMIT` it cost three round trips and SQLAlchemy's result
machinery; one `UPDATE … RETURNING` is atomic on its own, so the worker's hot path sends just it
(about a third of the claim's CPU). It returns only the columns an alert is built from: every
column asyncpg decodes (timestamps, the rest) costs CPU per row.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from src.infra.db import Database
from src.modules.notifications.store import Claimed

CLAIM_SQL = """
WITH wanted AS (
    SELECT * FROM unnest($1::uuid[], $2::int[]) AS w(id, version)
), claimed AS (
    UPDATE notifications.notifications n SET pushed_version = n.version
    FROM wanted w
    WHERE n.id = w.id AND n.read_at IS NULL AND n.push AND n.pushed_version < w.version
    RETURNING n.id, n.user_id, n.kind, n.actor_ids, n.actor_count, n.event_count, n.subject_id, n.subject_seq,
              n.data, n.version
)
SELECT c.*, d.id AS device_id, d.platform, d.token, COALESCE(p.show_previews, true) AS show_previews
FROM claimed c
LEFT JOIN notifications.devices d ON d.user_id = c.user_id
LEFT JOIN notifications.preferences p ON p.user_id = c.user_id
"""


async def claim_pushes(db: Database, items: list[tuple[uuid.UUID, int]]) -> list[Claimed]:
    """The notifications among (id, version) pairs whose alert is now this process's to push (the
    highest version of an id; unread, push on, not pushed at that version yet), with devices."""
    wanted: dict[uuid.UUID, int] = {}
    for note_id, version in items:
        wanted[note_id] = max(version, wanted.get(note_id, 0))
    # Not `db.fetch`: it re-runs a statement whose connection died, and this one writes.
    async with db.driver_connection() as conn:
        records = await conn.fetch(CLAIM_SQL, list(wanted), list(wanted.values()))
    claimed: dict[uuid.UUID, Claimed] = {}
    for record in records:
        row = SimpleNamespace(**dict(record.items()))
        entry = claimed.setdefault(row.id, Claimed(row, [], row.show_previews))
        if row.device_id is not None:
            entry.devices.append(row)
    return list(claimed.values())
