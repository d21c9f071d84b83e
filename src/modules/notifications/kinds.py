"""Kinds of notification, channels, and the default preferences."""

from __future__ import annotations

from typing import Literal, get_args

Kind = Literal["message", "reaction", "comment", "follow", "friend_request", "friend_accepted", "call", "group"]
Channel = Literal["in_app", "push", "email"]
KINDS: tuple[Kind, ...] = get_args(Kind)
CHANNELS: tuple[Channel, ...] = get_args(Channel)
EMAIL_BY_DEFAULT = frozenset({"message", "friend_request"})


def default_channels(kind: str) -> dict[str, bool]:
    """In-app and push for every kind; email only for messages and friend requests."""
    return {"in_app": True, "push": True, "email": kind in EMAIL_BY_DEFAULT}


# What a notification says, by kind: "{actors} {verb}" ("Ann and 11 others reacted to your post").
VERBS: dict[str, str] = {
    "message": "sent you a message",
    "reaction": "reacted to your post",
    "comment": "commented on your post",
    "follow": "started following you",
    "friend_request": "sent you a friend request",
    "friend_accepted": "accepted your friend request",
    "call": "tried to call you",
    "group": "added you to a group",
}
