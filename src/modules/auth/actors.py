"""Background work of the auth module: the password-reset mail."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from urllib.parse import quote

from src.infra.context import AppContext
from src.infra.tasks import TaskSpec


def _send(host: str, port: int, message: EmailMessage) -> None:
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.send_message(message)


async def _send_password_reset(ctx: AppContext, *, to: str, username: str, token: str, reset_id: str) -> None:
    # Idempotent: a retry after a successful send (lost ack) does not mail twice.
    done_key = f"auth:reset-mailed:{reset_id}"
    if await ctx.redis.exists(done_key):
        return
    link = f"{ctx.settings.public_base_url}/reset-password?token={quote(token)}"
    message = EmailMessage()
    message["From"] = ctx.settings.mail_from
    message["To"] = to
    message["Subject"] = "Reset your Chatty password"
    message.set_content(
        f"Hi {username},\n\nSomeone (hopefully you) asked to reset your Chatty password.\n"
        f"Open this link within an hour to choose a new one:\n\n{link}\n\n"
        f"Reset token: {token}\n\nIf it was not you, ignore this mail; your password stays as it is.\n")
    await asyncio.to_thread(_send, ctx.settings.smtp_host, ctx.settings.smtp_port, message)
    await ctx.redis.set(done_key, "1", ex=2 * 3600)


send_password_reset = TaskSpec(name="auth.send_password_reset", queue="email", fn=_send_password_reset,
                               max_retries=10)
TASKS = [send_password_reset]
