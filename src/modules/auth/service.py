"""Accounts and sessions: the only code that writes the auth tables."""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from src.common.auth import Principal
from src.common.clock import utcnow
from src.common.errors import Conflict, NotFound, RateLimited, Unauthorized, ValidationFailed
from src.common.events.auth import SessionsRevoked
from src.common.events.users import UserRegistered
from src.common.ids import new_id
from src.common.queries.users import GetProfiles
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.auth import passwords
from src.modules.auth.actors import send_password_reset
from src.modules.auth.models import Credential, PasswordReset, Session, SpentRefreshToken
from src.modules.auth.schemas import Account, SessionView, Tokens
from src.modules.auth.session_status import SessionStatus
from src.modules.auth.tokens import AccessTokens, digest, new_secret

log = structlog.get_logger("chatty.auth")
BAD_CREDENTIALS = "Wrong login or password"


def normalize_email(email: str) -> str:
    """A syntactically valid email, normalized; 400 naming the field otherwise."""
    try:
        return validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationFailed(f"email is invalid: {exc}", field="email", code="invalid_email") from None


class AuthService:
    """Sign-up, sign-in, token refresh, sessions, passwords."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._settings = ctx.settings
        self.tokens = AccessTokens(ctx.settings.jwt_secret, ctx.settings.jwt_audience,
                                   ctx.settings.access_token_ttl)
        self.status = SessionStatus(ctx.redis, ctx.db, ctx.settings.access_token_ttl,
                                    ctx.settings.session_cache_seconds, ctx.settings.socket_session_memory_seconds)

    # -- accounts -------------------------------------------------------------------------

    async def sign_up(self, username: str, email: str, password: str, display_name: str | None,
                      device_name: str | None = None, *, ip: str = "unknown") -> Tokens:
        """Create an account and its first session; publishes `UserRegistered`."""
        await self._ctx.limiter.hit(self._settings.signup_limit_per_ip, "signup-ip", ip,
                                    detail="Too many sign-ups from this address, try again later")
        email = normalize_email(email)
        passwords.check_password_rules(password, username=username)
        password_hash = await passwords.hash_password(password)
        user_id = new_id()
        try:
            async with self._ctx.uow() as tx:
                await self._ensure_unique(tx, username, email)
                tx.session.add(Credential(user_id=user_id, username=username, email=email,
                                          password_hash=password_hash))
                await tx.session.flush()
                tokens = await self._open_session(tx, user_id, device_name)
                tx.publish(UserRegistered(user_id=user_id, username=username, email=email,
                                          display_name=display_name or username))
        except IntegrityError:  # a concurrent sign-up took the name between check and insert
            raise Conflict("username or email is already taken", code="account_exists") from None
        tokens.user = Account(id=user_id, username=username, email=email, display_name=display_name or username)
        return tokens

    async def _ensure_unique(self, tx: UnitOfWork, username: str, email: str) -> None:
        taken = (await tx.session.execute(select(Credential.username, Credential.email).where(or_(
            func.lower(Credential.username) == username.lower(),
            func.lower(Credential.email) == email.lower())))).first()
        if taken is None:
            return
        if taken.username.lower() == username.lower():
            raise Conflict("username is already taken", code="username_taken", field="username")
        raise Conflict("email is already registered", code="email_taken", field="email")

    async def sign_in(self, login: str, password: str, device_name: str | None, ip: str) -> Tokens:
        """Exchange a login and password for tokens; failures are rate limited."""
        account_rule, ip_rule = self._settings.signin_limit_per_account, self._settings.signin_limit_per_ip
        async with self._ctx.db.session() as session:
            credential = await session.scalar(select(Credential).where(or_(
                func.lower(Credential.username) == login.lower(), func.lower(Credential.email) == login.lower())))
        # Counted per account, whichever login (username or email) names it. Each attempt is
        # counted before argon2 runs (parallel guesses cannot all pass a check made first) and
        # given back when it succeeds, so only failures use the allowance up.
        account = str(credential.user_id) if credential else login.lower()
        await self._ctx.limiter.reserve(ip_rule, "signin-ip", ip)
        try:
            await self._ctx.limiter.reserve(account_rule, "signin-account", account)
        except RateLimited:
            await self._ctx.limiter.refund(ip_rule, "signin-ip", ip)
            raise
        if not await passwords.verify_password(credential.password_hash if credential else None, password):
            raise Unauthorized(BAD_CREDENTIALS, code="invalid_credentials")
        await self._ctx.limiter.refund(account_rule, "signin-account", account)
        await self._ctx.limiter.refund(ip_rule, "signin-ip", ip)
        assert credential is not None
        async with self._ctx.uow() as tx:
            if passwords.needs_rehash(credential.password_hash):
                await tx.session.execute(update(Credential).where(Credential.user_id == credential.user_id)
                                         .values(password_hash=await passwords.hash_password(password)))
            tokens = await self._open_session(tx, credential.user_id, device_name)
        tokens.user = await self._account(credential)
        return tokens

    async def _account(self, credential: Credential) -> Account:
        profiles = await self._ctx.queries.ask(GetProfiles(user_ids=[credential.user_id]))
        profile = profiles.get(credential.user_id)
        return Account(id=credential.user_id, username=credential.username, email=credential.email,
                       display_name=profile.display_name if profile else credential.username)

    async def verify_user_password(self, user_id: uuid.UUID, password: str) -> bool:
        """Whether `password` is this user's (unknown users fail in the same time)."""
        async with self._ctx.db.session() as session:
            password_hash = await session.scalar(
                select(Credential.password_hash).where(Credential.user_id == user_id))
        return await passwords.verify_password(password_hash, password)

    async def change_password(self, principal: Principal, current: str, new: str) -> None:
        """Change the password; every other session of the user is revoked."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(principal.user_id))
        if not await self.verify_user_password(principal.user_id, current):
            raise Unauthorized("current_password is wrong", code="invalid_credentials")
        async with self._ctx.db.session() as session:
            username = await session.scalar(select(Credential.username)
                                            .where(Credential.user_id == principal.user_id))
        passwords.check_password_rules(new, field="new_password", username=username)
        new_hash = await passwords.hash_password(new)
        async with self._ctx.uow() as tx:
            await tx.session.execute(update(Credential).where(Credential.user_id == principal.user_id)
                                     .values(password_hash=new_hash, password_changed_at=func.now()))
            await self._spend_resets(tx, principal.user_id)
            await self._revoke(tx, principal.user_id, "password_changed", keep=principal.session_id)

    async def forgot_password(self, email: str, ip: str) -> None:
        """Have a single-use reset token mailed when the account exists; silent otherwise."""
        await self._ctx.limiter.hit(self._settings.forgot_limit_per_ip, "forgot-ip", ip)
        await self._ctx.limiter.hit(self._settings.forgot_limit_per_email, "forgot-email", email.lower())
        async with self._ctx.db.session() as session:
            credential = await session.scalar(
                select(Credential).where(func.lower(Credential.email) == email.lower()))
        if credential is None:
            return
        # Ids only: the worker makes the token (no secret in the broker or its dead letters).
        self._ctx.tasks.enqueue(send_password_reset, user_id=str(credential.user_id), request_id=str(new_id()))

    async def reset_password(self, token: str, password: str) -> None:
        """Set a new password with a reset token (once); every session is revoked."""
        async with self._ctx.uow() as tx:
            reset = await tx.session.scalar(
                select(PasswordReset).where(PasswordReset.token_hash == digest(token)).with_for_update())
            if reset is None or reset.used_at is not None or reset.expires_at <= utcnow():
                raise ValidationFailed("token is invalid, used or expired", field="token", code="invalid_token")
            username = await tx.session.scalar(select(Credential.username)
                                               .where(Credential.user_id == reset.user_id))
            passwords.check_password_rules(password, username=username)
            await tx.session.execute(update(Credential).where(Credential.user_id == reset.user_id).values(
                password_hash=await passwords.hash_password(password), password_changed_at=func.now()))
            await self._spend_resets(tx, reset.user_id)
            await self._revoke(tx, reset.user_id, "password_reset")

    async def _spend_resets(self, tx: UnitOfWork, user_id: uuid.UUID) -> None:
        """A new password makes every outstanding reset token useless."""
        await tx.session.execute(update(PasswordReset).where(
            PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None)).values(used_at=func.now()))

    # -- sessions -------------------------------------------------------------------------

    async def _open_session(self, tx: UnitOfWork, user_id: uuid.UUID, device_name: str | None) -> Tokens:
        session_id, refresh = new_id(), new_secret()
        tx.session.add(Session(id=session_id, user_id=user_id, device_name=device_name,
                               refresh_hash=digest(refresh),
                               refresh_expires_at=utcnow() + timedelta(seconds=self._settings.refresh_token_ttl)))
        return Tokens(user=Account(id=user_id, username="", email=""),
                      access_token=self.tokens.issue(user_id, session_id), refresh_token=refresh,
                      expires_in=self.tokens.ttl)

    async def refresh(self, refresh_token: str) -> Tokens:
        """Rotate a refresh token; a spent one revokes its whole session."""
        token_hash = digest(refresh_token)
        async with self._ctx.uow() as tx:
            session = await tx.session.scalar(
                select(Session).where(Session.refresh_hash == token_hash).with_for_update())
            if session is None:
                spent = await tx.session.scalar(
                    select(SpentRefreshToken.session_id).where(SpentRefreshToken.token_hash == token_hash))
                if spent is not None:
                    user_id = await tx.session.scalar(select(Session.user_id).where(Session.id == spent))
                    if user_id is not None:
                        await self._revoke(tx, user_id, "refresh_reuse", only=spent)
                        log.warning("auth.refresh_reuse", session_id=str(spent))
            elif session.revoked_at is None and session.refresh_expires_at > utcnow():
                new_refresh = new_secret()
                tx.session.add(SpentRefreshToken(token_hash=token_hash, session_id=session.id))
                session.refresh_hash = digest(new_refresh)
                session.last_used_at = utcnow()
                credential = await tx.session.get(Credential, session.user_id)
                if credential is not None:
                    return Tokens(user=await self._account(credential),
                                  access_token=self.tokens.issue(session.user_id, session.id),
                                  refresh_token=new_refresh, expires_in=self.tokens.ttl)
        raise Unauthorized("The refresh token is invalid, spent or expired", code="invalid_token")

    async def authenticate(self, token: str, *, socket: bool = False) -> Principal | None:
        """The principal of a valid access token whose session is still active (`socket`: a socket
        connect, which accepts a verdict remembered for SOCKET_SESSION_MEMORY_SECONDS)."""
        principal = self.tokens.verify(token)
        memory = self._settings.socket_session_memory_seconds if socket else None
        if principal is None or not await self.status.is_active(principal.session_id, principal.user_id, memory):
            return None
        return principal

    async def list_sessions(self, principal: Principal) -> list[SessionView]:
        """The user's active sessions, newest first."""
        async with self._ctx.db.session() as session:
            rows = (await session.scalars(
                select(Session).where(Session.user_id == principal.user_id, Session.revoked_at.is_(None),
                                      Session.refresh_expires_at > func.now())
                .order_by(Session.created_at.desc()).limit(100))).all()
        return [SessionView(id=s.id, device_name=s.device_name, created_at=s.created_at,
                            last_used_at=s.last_used_at, current=s.id == principal.session_id) for s in rows]

    async def sign_out(self, principal: Principal, session_id: uuid.UUID | None = None) -> None:
        """Revoke one of the user's sessions (this one by default); 404 if not theirs."""
        target = session_id or principal.session_id
        async with self._ctx.uow() as tx:
            if not await self._revoke(tx, principal.user_id, "signed_out", only=target):
                raise NotFound("No such session", code="session_not_found")

    async def sign_out_all(self, principal: Principal) -> None:
        """Revoke every session of the user."""
        async with self._ctx.uow() as tx:
            await self._revoke(tx, principal.user_id, "signed_out_all")

    async def _revoke(self, tx: UnitOfWork, user_id: uuid.UUID, reason: str, *,
                      only: uuid.UUID | None = None, keep: uuid.UUID | None = None) -> list[uuid.UUID]:
        query = (update(Session).where(Session.user_id == user_id, Session.revoked_at.is_(None))
                 .values(revoked_at=func.now(), revoke_reason=reason).returning(Session.id))
        if only is not None:
            query = query.where(Session.id == only)
        if keep is not None:
            query = query.where(Session.id != keep)
        revoked = list((await tx.session.scalars(query)).all())
        if revoked:
            tx.publish(SessionsRevoked(user_id=user_id, session_ids=revoked, reason=reason))
        return revoked

    async def forget_user(self, tx: UnitOfWork, user_id: uuid.UUID) -> None:
        """Remove a deleted user's credentials, sessions and reset tokens."""
        await self._revoke(tx, user_id, "account_deleted")
        session_ids = select(Session.id).where(Session.user_id == user_id).scalar_subquery()
        await tx.session.execute(delete(SpentRefreshToken).where(SpentRefreshToken.session_id.in_(session_ids)))
        await tx.session.execute(delete(Session).where(Session.user_id == user_id))
        await tx.session.execute(delete(PasswordReset).where(PasswordReset.user_id == user_id))
        await tx.session.execute(delete(Credential).where(Credential.user_id == user_id))
