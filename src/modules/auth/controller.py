"""REST routes of the auth module (`/api/v1/auth`)."""

from __future__ import annotations

import uuid

from litestar import Controller, Request, delete, get, post, put
from litestar.datastructures import CacheControlHeader
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from src.common.auth import Principal
from src.common.pagination import Page
from src.modules.auth.schemas import (
    ChangePassword,
    ForgotPassword,
    Refresh,
    ResetPassword,
    SessionView,
    SignIn,
    SignUp,
    Tokens,
)
from src.modules.auth.service import AuthService

NO_STORE = CacheControlHeader(no_store=True)


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @post("/signup", security=[{}], cache_control=NO_STORE)
    async def sign_up(self, data: SignUp, request: Request, auth_service: AuthService) -> Tokens:
        """Create an account; returns its first token pair (sign-ups are limited per IP)."""
        return await auth_service.sign_up(data.username, data.email, data.password, data.display_name,
                                          ip=_ip(request))

    @post("/signin", status_code=200, security=[{}], cache_control=NO_STORE)
    async def sign_in(self, data: SignIn, request: Request, auth_service: AuthService) -> Tokens:
        """Sign in with username or email; failures are limited per account and per IP (429)."""
        return await auth_service.sign_in(data.login, data.password, data.device_name, _ip(request))

    @post("/refresh", status_code=200, security=[{}], cache_control=NO_STORE)
    async def refresh(self, data: Refresh, auth_service: AuthService) -> Tokens:
        """Rotate the refresh token; reusing a spent one revokes its session."""
        return await auth_service.refresh(data.refresh_token)

    @post("/signout", status_code=HTTP_204_NO_CONTENT)
    async def sign_out(self, principal: Principal, auth_service: AuthService) -> None:
        """Revoke this session: its access token stops working at once."""
        await auth_service.sign_out(principal)

    @post("/signout-all", status_code=HTTP_204_NO_CONTENT)
    async def sign_out_all(self, principal: Principal, auth_service: AuthService) -> None:
        """Revoke every session of the user."""
        await auth_service.sign_out_all(principal)

    @get("/sessions")
    async def sessions(self, principal: Principal, auth_service: AuthService) -> Page[SessionView]:
        """The user's active sessions, newest first (at most 100, one page)."""
        return Page(items=await auth_service.list_sessions(principal))

    @delete("/sessions/{session_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def revoke_session(self, session_id: uuid.UUID, principal: Principal,
                             auth_service: AuthService) -> None:
        """Revoke one of the user's sessions (404 if it is not theirs)."""
        await auth_service.sign_out(principal, session_id)

    @put("/password", status_code=HTTP_204_NO_CONTENT)
    async def change_password(self, data: ChangePassword, principal: Principal,
                              auth_service: AuthService) -> None:
        """Change the password; the other sessions are revoked."""
        await auth_service.change_password(principal, data.current_password, data.new_password)

    @post("/forgot-password", status_code=HTTP_202_ACCEPTED, security=[{}])
    async def forgot_password(self, data: ForgotPassword, request: Request,
                              auth_service: AuthService) -> None:
        """Always 202: when the account exists, a single-use token valid 1 h is mailed."""
        await auth_service.forgot_password(data.email, _ip(request))

    @post("/reset-password", status_code=HTTP_204_NO_CONTENT, security=[{}])
    async def reset_password(self, data: ResetPassword, auth_service: AuthService) -> None:
        """Set a new password with a mailed token (once); all sessions are revoked."""
        await auth_service.reset_password(data.token, data.password)
