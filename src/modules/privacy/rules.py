"""The permission rules, free of I/O: a block either way denies, then the target's setting decides."""

from __future__ import annotations

from typing import Literal

from src.common.queries.privacy import Audience, Decision, PrivacySettingsView

Action = Literal["message", "call", "profile"]
ACTIONS: tuple[Action, ...] = ("message", "call", "profile")
SETTING_OF: dict[Action, str] = {"message": "who_can_message", "call": "who_can_call",
                                 "profile": "profile_visibility"}

ALLOWED = Decision(allowed=True)
BLOCKED = Decision(allowed=False, reason="blocked")
NOT_ALLOWED = Decision(allowed=False, reason="not_allowed")


def audience(settings: PrivacySettingsView, action: Action) -> Audience:
    """Who the target lets do `action`."""
    value: Audience = getattr(settings, SETTING_OF[action])
    return value


def decide(who: Audience, *, blocked: bool, friends: bool | None) -> Decision:
    """The decision for one action; `friends` may be None only when `who` is not "friends"."""
    if blocked:
        return BLOCKED
    if who == "everyone":
        return ALLOWED
    if who == "friends":
        if friends is None:
            raise ValueError("friendship is needed to decide for a friends-only setting")
        return ALLOWED if friends else NOT_ALLOWED
    return NOT_ALLOWED
