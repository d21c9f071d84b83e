"""media: uploaded items and their attachments; profile images in users

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
    CREATE SCHEMA IF NOT EXISTS media;
    CREATE TABLE media.items (
        id uuid PRIMARY KEY,
        owner_id uuid NOT NULL,
        purpose varchar(12) NOT NULL,
        kind varchar(8) NOT NULL,
        status varchar(12) NOT NULL,
        filename varchar(255) NOT NULL,
        declared_type varchar(100) NOT NULL,
        content_type varchar(100) NOT NULL,
        size bigint NOT NULL,
        width integer,
        height integer,
        duration_s double precision,
        placeholder varchar(100),
        processing varchar(20),
        failure_reason varchar(200),
        variants jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        completed_at timestamptz,
        processed_at timestamptz
    );
    CREATE INDEX ix_media_items_owner ON media.items (owner_id, created_at DESC);
    CREATE INDEX ix_media_items_status_created ON media.items (status, created_at);
    CREATE TABLE media.attachments (
        media_id uuid NOT NULL REFERENCES media.items (id) ON DELETE CASCADE,
        kind varchar(12) NOT NULL,
        target_id uuid NOT NULL,
        conversation_id uuid,
        attached_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_media_attachments PRIMARY KEY (media_id, kind, target_id)
    );
    CREATE INDEX ix_media_attachments_target ON media.attachments (kind, target_id, attached_at DESC);
    ALTER TABLE users.profiles ADD COLUMN avatar_media_id uuid, ADD COLUMN background_media_id uuid,
        ADD COLUMN background_url varchar(500);
    CREATE TABLE users.profile_images (
        user_id uuid NOT NULL,
        kind varchar(12) NOT NULL,
        media_id uuid NOT NULL,
        set_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_profile_images PRIMARY KEY (user_id, media_id, kind)
    );
    CREATE INDEX ix_profile_images_recent ON users.profile_images (user_id, set_at DESC, media_id DESC);
    """


def upgrade() -> None:
    for statement in UPGRADE.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE users.profile_images")
    op.execute("ALTER TABLE users.profiles DROP COLUMN avatar_media_id, DROP COLUMN background_media_id, "
               "DROP COLUMN background_url")
    op.execute("DROP SCHEMA media CASCADE")
