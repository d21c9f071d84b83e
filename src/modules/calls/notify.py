"""Socket events after a transition, derived from the call's state before and after it.

- a callee starts ringing: `call:incoming` (the call) to all their devices;
- a callee answers: `call:accepted {call_id, user_id}` to the others who were in or ringing,
  `call:ended {reason: answered_elsewhere}` to the answerer's other devices;
- a callee declines: `call:rejected {call_id, user_id}` to the others;
- someone's part ends (the call ended, or they missed, failed, declined): `call:ended
  {call_id, reason}` to their devices (not to the socket whose ack already says so).
"""

from __future__ import annotations

import uuid
from collections import defaultdict

from src.common.realtime import Realtime
from src.modules.calls.history import view_of
from src.modules.calls.state import LIVE, CallState

_PART_END_REASON = {"rejected": "rejected", "missed": "missed", "failed": "failed", "left": "completed"}


async def ringing(realtime: Realtime, call: CallState) -> None:
    """Ring every ringing callee's devices."""
    callees = [p.user_id for p in call.in_state("ringing")]
    if callees:
        await realtime.emit_to_users("call:incoming", view_of(call), callees)


async def changed(realtime: Realtime, before: CallState, after: CallState, *, actor_sid: str | None = None,
                  resumed: bool = False) -> None:
    """Tell everyone concerned what a transition changed."""
    was = {p.user_id: p.state for p in before.participants}
    live_before = [p.user_id for p in before.participants if p.state in LIVE]
    call_id = str(after.id)
    ended: dict[str, list[uuid.UUID]] = defaultdict(list)
    for part in after.participants:
        old = was.get(part.user_id)
        others = [u for u in live_before if u != part.user_id]
        if old == "ringing" and part.state != "ringing":
            if part.state == "joined":
                await realtime.emit_to_users("call:accepted", {"call_id": call_id, "user_id": str(part.user_id)},
                                             others)
                await realtime.emit_to_users("call:ended", {"call_id": call_id, "reason": "answered_elsewhere"},
                                             [part.user_id], skip_sid=part.sid)
            elif part.state == "rejected":
                await realtime.emit_to_users("call:rejected", {"call_id": call_id, "user_id": str(part.user_id)},
                                             others)
        elif resumed and part.sid == actor_sid and part.state == "joined":
            await realtime.emit_to_users("call:accepted", {"call_id": call_id, "user_id": str(part.user_id),
                                                           "resumed": True}, others)
        if old in LIVE and (part.state not in LIVE or after.status == "ended"):
            reason = after.end_reason if after.status == "ended" else _PART_END_REASON.get(part.state, "completed")
            ended[reason or "completed"].append(part.user_id)
    for reason, users in ended.items():
        await realtime.emit_to_users("call:ended", {"call_id": call_id, "reason": reason}, users, skip_sid=actor_sid)
