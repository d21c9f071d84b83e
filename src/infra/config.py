"""Settings: every knob comes from the environment (a `.env` is read in development)."""

from __future__ import annotations

import hashlib
import hmac
import sys
from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, field_validator
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

    # API processes and sockets (issue 8: several processes, light idle sockets)
    socket_ws: Literal["websockets-sansio", "wsproto", "websockets"] = "websockets-sansio"  # uvicorn's
    socket_polling: bool = True  # Engine.IO long-polling; `chatty api --workers N>1` turns it off

    # Events and workers (issue 7)
    dispatch_tasks: int = Field(default=4, ge=1)  # background listener tasks per process
    dispatch_queue: int = Field(default=10_000, ge=1)  # committed events waiting for them
    broker_namespace: str = Field(default="dramatiq", pattern=r"^[A-Za-z0-9_.:-]+$")
    worker_metrics_port: int = Field(default=0, ge=0, lt=65536)  # 0: workers export no metrics

    # Graceful overload (issue 8): per-process admission control (src/infra/admission.py)
    admission_max_in_flight: int = Field(default=64, ge=1)  # client events and HTTP requests running at once
    admission_max_age: float = Field(default=0.15, gt=0, description="seconds; older in-flight work is queueing")
    admission_max_loop_lag: float = Field(default=0.1, gt=0, description="seconds the event loop may run late")
    admission_retry_after: int = Field(default=1, ge=1, description="seconds, the retry hint of a refusal")
    db_pool_timeout: float = Field(default=1.0, gt=0, description="seconds to wait for a pooled connection")

    # Abuse resistance (issue 9): exposure of the API process.
    cors_origins: str = ""  # comma-separated allowed origins; empty: no cross-origin access; "*": any
    metrics_token: str = ""  # bearer token /metrics requires; empty: /metrics is not served
    forwarded_allow_ips: str = ""  # proxies trusted for X-Forwarded-For/-Proto; empty: none
    max_header_bytes: int = Field(default=16_384, gt=0)

    # REST under load (issue 8): seconds an API process remembers a session's verdict while it hears
    # revocations; 0: every authenticated request asks Redis.
    session_cache_seconds: float = Field(default=2.0, ge=0, description="seconds")

    # Presence churn (issue 10): seconds a socket connect may trust a session verdict this process
    # remembers (dropped at once when the revocation is announced; 0: every connect asks Redis);
    # seconds the socket hooks' Redis writes are gathered into one pipeline; new sockets started
    # per 5 ms tick while the loop is on time (one while it is late; 0: no pacing) and the longest
    # a new socket waits for its turn.
    socket_session_memory_seconds: float = Field(default=60.0, ge=0, description="seconds")
    socket_hook_write_window: float = Field(default=0.02, ge=0, description="seconds")
    socket_connects_per_tick: int = Field(default=4, ge=0)
    socket_connect_max_wait: float = Field(default=1.0, ge=0, description="seconds")

    @property
    def cors_origin_list(self) -> list[str]:
        """The allowed CORS origins as a list."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @field_validator("jwt_secret")
    @classmethod
    def _not_a_placeholder(cls, value: str) -> str:
        # The placeholder docker-compose.yml once shipped: anyone could forge tokens with it.
        if "change-me" in value.lower():
            raise ValueError("is a published placeholder; generate a random secret")
        return value
    # messaging: groups
    group_max_members: int = Field(default=1024, ge=2)

    # presence
    presence_timeout: float = Field(default=90.0, gt=0, description="seconds without a heartbeat: gone")
    presence_debounce: float = Field(default=10.0, ge=0, description="seconds a reconnect is no transition")
    presence_sweep_interval: float = Field(default=1.0, gt=0, description="seconds between presence sweeps")
    presence_fanout_limit: int = Field(default=5000, gt=0, description="contacts told of a transition, at most")
    presence_push_group_max: int = Field(default=50, ge=2, description="groups up to this size push presence")
    # calls: ring and reconnect timers, signaling limits, ICE servers (coturn REST-API credentials)
    call_ring_timeout: float = Field(default=45.0, gt=0, description="seconds")
    call_reconnect_grace: float = Field(default=20.0, gt=0, description="seconds")
    call_max_participants: int = Field(default=8, ge=2, le=32)
    call_signal_limit_per_user: str = "50/second"  # call:signal events (ICE candidates come in bursts)
    stun_urls: str = ""  # comma-separated, e.g. "stun:turn.example.com:3478"
    turn_urls: str = ""  # comma-separated, e.g. "turn:turn.example.com:3478?transport=udp"
    turn_secret: str = ""  # coturn's static-auth-secret; no TURN entry is handed out without it
    turn_credential_ttl: int = Field(default=3600, gt=0, le=3600, description="seconds")
    # Media (storage and the media module). S3 is used when S3_BUCKET is set, else local disk.
    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = None  # what clients reach, when not S3_ENDPOINT_URL (compose)
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    media_dir: str = ".data/media"
    upload_limit_per_user: str = "60/hour"
    media_max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    media_max_video_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    media_max_audio_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    media_max_file_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    media_max_pixels: int = Field(default=50_000_000, gt=0, description="decompression-bomb limit")
    media_upload_url_ttl: int = Field(default=15 * 60, gt=0, description="seconds")
    media_download_url_ttl: int = Field(default=10 * 60, gt=0, description="seconds")
    media_upload_expiry: int = Field(default=3600, gt=0, description="seconds before an upload never completed goes")
    media_orphan_expiry: int = Field(default=24 * 3600, gt=0, description="seconds before unattached media go")

    @property
    def media_signing_key(self) -> bytes:
        """The HMAC key of local-disk storage URLs, derived from the JWT secret (one secret to manage)."""
        return hmac.new(self.jwt_secret.encode(), b"chatty-media-urls", hashlib.sha256).digest()
    # posts: the feed
    feed_fanout_max_followers: int = Field(default=10_000, ge=0)  # above: pulled at read time
    feed_timeline_size: int = Field(default=800, ge=10)  # entries kept per Redis timeline
    feed_timeline_ttl: int = Field(default=7 * 24 * 3600, gt=0, description="seconds")
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
    # Presence churn (issue 10): socket changes are written to Redis in one batch per window
    presence_write_window: float = Field(default=0.05, gt=0, le=1.0, description="seconds")

    # Feed read path (issue 13): the caches of `GET /posts/feed` (src/modules/posts/feed_cache.py).
    feed_post_cache_ttl: int = Field(default=3600, gt=0, description="seconds a pre-encoded post stays in Redis")
    feed_viewer_cache_size: int = Field(default=1000, ge=0)  # viewers whose follow/block sets a process keeps
    feed_profile_cache_seconds: float = Field(default=2.0, ge=0, description="seconds; 0: profiles read per page")

    # Authenticated REST reads (issue 8 target 4): plain asyncpg connections for single statements
    db_driver_pool_size: int = Field(default=20, ge=1, description="connections at most, opened on demand")

    @property
    def async_database_url(self) -> str:
        """The database URL with the asyncpg driver named."""
        if self.database_url.startswith("postgresql://"):
            return "postgresql+asyncpg://" + self.database_url.removeprefix("postgresql://")
        return self.database_url

    # worker CPU per message: due message windows are polled by each worker process in batches
    notification_due_poll: float = Field(default=0.2, gt=0, description="seconds between polls when none is due")
    notification_due_batch: int = Field(default=500, ge=1)  # windows taken per round

    # push jobs/s per worker (issue 14): batches of a batched task (pushes) running side by side
    worker_batches_running: int = Field(default=0, ge=0, description="0: each task's own (pushes: 1)")
    # push jobs/s per worker (issue 14, fourth session): jobs a bulk lane takes per fetch (one batch)
    worker_bulk_max_jobs: int = Field(default=64, ge=1, le=1000)

    # one big group (issue 10): a group message's notifications are scheduled in one window of its
    # conversation (O(1) per message), expanded to the members by a worker at most every GAP seconds
    notification_conversation_window_from: int = Field(default=2, ge=1, description="recipients")
    notification_conversation_window_gap: float = Field(default=2.0, ge=0, description="seconds")

    # connection edge (issues 8.3 and 10): new websockets refused (503, Retry-After) while admission refuses work
    admission_refuse_connects: bool = True


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
