"""REST routes of the privacy module (`/api/v1/privacy`)."""

from __future__ import annotations

import uuid

from litestar import Controller, get, patch

from src.common.auth import Principal
from src.common.queries.privacy import PrivacySettingsView
from src.modules.privacy.schemas import PermissionsView, SettingsPatch
from src.modules.privacy.service import PrivacyService

RULES = (
    "What you may do towards a user right now: `{can_message, can_call, can_view_profile}`; "
    "404 `user_not_found` when there is no such user. A block either way denies everything. "
    "Otherwise the target's setting decides: `everyone` allows, `friends` allows friends only, "
    "`nobody` denies. Everyone may view their own profile. Answers are cached for 10 minutes and "
    "dropped at once on a block, unblock, friendship change or settings change. When an answer "
    "cannot be determined (a failing dependency) it is denied. Only booleans are returned: the "
    "caller cannot tell a block from a privacy setting."
)

SETTINGS = ("Your own privacy settings: `who_can_message`, `who_can_call`, `profile_visibility` "
            "(everyone | friends | nobody), `show_last_seen`, `read_receipts`. The defaults are "
            "everyone, everyone, everyone, true, true until you change one.")
PATCH = ("Change your own privacy settings; absent fields stay as they are, unknown fields are a 400. "
         "There is no route that reads or changes another user's settings. A change takes effect on "
         "the very next permission check (cached answers about you are dropped at once).")


class PrivacyController(Controller):
    path = "/privacy"
    tags = ["privacy"]

    @get("/settings", description=SETTINGS)
    async def settings(self, principal: Principal, privacy_service: PrivacyService) -> PrivacySettingsView:
        """Your own privacy settings (the defaults until you change one)."""
        return await privacy_service.settings_of(principal.user_id)

    @patch("/settings", description=PATCH)
    async def update_settings(self, data: SettingsPatch, principal: Principal,
                              privacy_service: PrivacyService) -> PrivacySettingsView:
        """Change your own privacy settings (absent fields stay as they are)."""
        return await privacy_service.update(principal, data)

    @get("/permissions/{user_id:uuid}", description=RULES)
    async def permissions(self, user_id: uuid.UUID, principal: Principal,
                          privacy_service: PrivacyService) -> PermissionsView:
        """What you may do towards a user: message, call, view the profile; 404 if no such user."""
        return await privacy_service.permissions(principal, user_id)
