"""Events of the privacy module."""

from __future__ import annotations

import uuid

from src.common.events.base import Event


class PrivacySettingsChanged(Event, frozen=True, kw_only=True):
    """A user changed privacy settings; `changed` names the fields that changed."""

    name = "privacy.settings_changed.v1"
    user_id: uuid.UUID
    changed: list[str]
