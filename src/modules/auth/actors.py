"""Background work of the auth module: the password-reset mail.

No secret travels through the broker: the message carries the account id and a request id;
the actor creates the single-use token itself (storing only its hash) and mails it, so a
retried or dead-lettered message holds nothing worth stealing.
"""

from __future__ import annotations

import asyncio
import smtplib
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import quote
from uuid import UUID

from sqlalchemy import select

from src.common.clock import utcnow
from src.infra.context import AppContext
from src.infra.tasks import TaskSpec
from src.modules.auth.models import Credential, PasswordReset
from src.modules.auth.tokens import digest, new_secret

RESET_TTL = timedelta(hours=1)


def _send(host: str, port: int, message: EmailMessage) -> None:
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.send_message(message)


async def _send_password_reset(ctx: AppContext, *, user_id: str, request_id: str) -> None:
    # Idempotent: a retry after a successful send (lost ack) does not mail twice. A retry after
    # a failed send makes a fresh token; the unsent one is never known to anyone and expires.
    done_key = f"auth:reset-mailed:{request_id}"
    if await ctx.redis.exists(done_key):
        return
    async with ctx.db.session() as session:
        credential = await session.scalar(select(Credential).where(Credential.user_id == UUID(user_id)))
    if credential is None:  # the account was deleted meanwhile
        return
    token = new_secret()
    async with ctx.uow() as tx:
        tx.session.add(PasswordReset(token_hash=digest(token), user_id=credential.user_id,
                                     expires_at=utcnow() + RESET_TTL))
    link = f"{ctx.settings.public_base_url}/reset-password?token={quote(token)}"
    message = EmailMessage()
    message["From"] = ctx.settings.mail_from
    message["To"] = credential.email
    message["Subject"] = "Reset your Chatty password"
    message.set_content(
        f"Hi {credential.username},\n\nSomeone (hopefully you) asked to reset your Chatty password.\n"
        f"Open this link within an hour to choose a new one:\n\n{link}\n\n"
        f"Reset token: {token}\n\nIf it was not you, ignore this mail; your password stays as it is.\n")
    await asyncio.to_thread(_send, ctx.settings.smtp_host, ctx.settings.smtp_port, message)
    await ctx.redis.set(done_key, "1", ex=2 * 3600)


send_password_reset = TaskSpec(name="auth.send_password_reset", queue="email", fn=_send_password_reset,
                               max_retries=10)
TASKS = [send_password_reset]
