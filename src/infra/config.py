"""Settings: every knob comes from the environment (a `.env` is read in development)."""

from __future__ import annotations

import sys
from functools import lru_cache

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """One typed settings object, read once at start-up."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    database_url: str = Field(pattern=r"^postgresql(\+asyncpg)?://")
    redis_url: str = Field(pattern=r"^rediss?://")
    jwt_secret: str = Field(min_length=32)
    jwt_audience: str = "chatty"
    access_token_ttl: int = Field(default=15 * 60, gt=0, description="seconds")
    refresh_token_ttl: int = Field(default=30 * 24 * 3600, gt=0, description="seconds")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, gt=0, lt=65536)
    mail_from: str = "Chatty <no-reply@chatty.local>"
    public_base_url: str = "http://127.0.0.1:8000"
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")

    # Limits and tuning; the defaults are the production values.
    signin_limit_per_account: str = "5/15minutes"
    signin_limit_per_ip: str = "50/15minutes"
    forgot_limit_per_email: str = "3/hour"
    forgot_limit_per_ip: str = "20/hour"
    signup_limit_per_ip: str = "10/hour"
    send_limit_per_user: str = "30/second"  # messages, REST and socket together
    write_limit_per_user: str = "60/minute"  # every other write (REST and socket)
    search_limit_per_user: str = "30/minute"
    socket_event_limit: str = "20/second"  # per socket, every client event
    max_body_bytes: int = 1_048_576
    outbox_max_attempts: int = 8
    outbox_relay_interval: float = 1.0
    db_pool_size: int = 40
    run_outbox_relay: bool = True

    # notifications: delays in seconds; push credentials (empty: that channel is off)
    push_delay: float = Field(default=5.0, ge=0)
    email_batch_window: float = Field(default=600.0, gt=0)
    notification_collapse_window: float = Field(default=3600.0, gt=0)
    fcm_project_id: str = ""
    fcm_credentials_file: str = ""
    fcm_endpoint: str = "https://fcm.googleapis.com"
    vapid_private_key: str = ""  # base64url: the raw 32-byte key or its DER (py_vapid `Vapid.from_string`)
    vapid_subject: str = "mailto:admin@chatty.local"
    push_max_attempts: int = Field(default=6, ge=1)

    @property
    def async_database_url(self) -> str:
        """The database URL with the asyncpg driver named."""
        if self.database_url.startswith("postgresql://"):
            return "postgresql+asyncpg://" + self.database_url.removeprefix("postgresql://")
        return self.database_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the settings; on a missing or malformed value print one line naming it and exit."""
    try:
        return Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        print(f"chatty: setting {name} is {'missing' if first['type'] == 'missing' else 'invalid'}: "
              f"{first['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
