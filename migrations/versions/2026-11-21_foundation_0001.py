"""foundation: outbox and inbox, auth, users

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
    CREATE SCHEMA IF NOT EXISTS infra;
    CREATE TABLE infra.outbox (
        id bigserial PRIMARY KEY,
        event_id uuid NOT NULL UNIQUE,
        name varchar(200) NOT NULL,
        payload jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        dispatched_at timestamptz,
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        dead_at timestamptz,
        last_error text
    );
    CREATE INDEX ix_outbox_due ON infra.outbox (next_attempt_at, id)
        WHERE dispatched_at IS NULL AND dead_at IS NULL;
    CREATE TABLE infra.inbox (
        listener varchar(200) NOT NULL,
        event_id uuid NOT NULL,
        handled_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (listener, event_id)
    );

    CREATE SCHEMA IF NOT EXISTS auth;
    CREATE TABLE auth.credentials (
        user_id uuid PRIMARY KEY,
        username varchar(32) NOT NULL,
        email varchar(254) NOT NULL,
        password_hash text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        password_changed_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE UNIQUE INDEX uq_credentials_username_lower ON auth.credentials (lower(username));
    CREATE UNIQUE INDEX uq_credentials_email_lower ON auth.credentials (lower(email));
    CREATE TABLE auth.sessions (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL,
        device_name varchar(100),
        refresh_hash varchar(64) NOT NULL UNIQUE,
        refresh_expires_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz,
        revoke_reason varchar(40)
    );
    CREATE INDEX ix_sessions_user_id ON auth.sessions (user_id);
    CREATE TABLE auth.spent_refresh_tokens (
        token_hash varchar(64) PRIMARY KEY,
        session_id uuid NOT NULL,
        spent_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX ix_spent_refresh_tokens_session_id ON auth.spent_refresh_tokens (session_id);
    CREATE TABLE auth.password_resets (
        token_hash varchar(64) PRIMARY KEY,
        user_id uuid NOT NULL,
        expires_at timestamptz NOT NULL,
        used_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX ix_password_resets_user_id ON auth.password_resets (user_id);

    CREATE SCHEMA IF NOT EXISTS users;
    CREATE TABLE users.profiles (
        id uuid PRIMARY KEY,
        username varchar(32) NOT NULL,
        email varchar(254) NOT NULL,
        display_name varchar(64) NOT NULL,
        quote varchar(280),
        work varchar(100),
        school varchar(100),
        location varchar(100),
        social_links jsonb NOT NULL DEFAULT '{}'::jsonb,
        avatar_url varchar(500),
        followers_count integer NOT NULL DEFAULT 0,
        following_count integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX ix_profiles_username_prefix ON users.profiles (lower(username) text_pattern_ops);
    CREATE INDEX ix_profiles_display_name_prefix ON users.profiles (lower(display_name) text_pattern_ops);
    """


def upgrade() -> None:
    for statement in UPGRADE.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    for schema in ("users", "auth", "infra"):
        op.execute(f"DROP SCHEMA {schema} CASCADE")
