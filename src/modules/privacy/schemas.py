"""Request and response bodies of the privacy API."""

from __future__ import annotations

import msgspec

from src.common.queries.privacy import Audience


class SettingsPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Settings to change; absent fields stay as they are."""

    who_can_message: Audience | msgspec.UnsetType = msgspec.UNSET
    who_can_call: Audience | msgspec.UnsetType = msgspec.UNSET
    profile_visibility: Audience | msgspec.UnsetType = msgspec.UNSET
    show_last_seen: bool | msgspec.UnsetType = msgspec.UNSET
    read_receipts: bool | msgspec.UnsetType = msgspec.UNSET


class PermissionsView(msgspec.Struct):
    """What the caller may do towards one user right now."""

    can_message: bool
    can_call: bool
    can_view_profile: bool
