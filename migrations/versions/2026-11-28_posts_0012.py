"""posts: posts, comments, reactions, authors whose posts are pulled at read time

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
    CREATE SCHEMA IF NOT EXISTS posts;
    CREATE TABLE posts.posts (
        id uuid PRIMARY KEY,
        author_id uuid NOT NULL,
        body text,
        bg_color varchar(9),
        feelings varchar(20),
        gif_url varchar(2048),
        media_ids uuid[] NOT NULL DEFAULT '{}',
        media_kinds text[] NOT NULL DEFAULT '{}',
        privacy varchar(10) NOT NULL,
        comment_count integer NOT NULL DEFAULT 0,
        reaction_counts jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        edited_at timestamptz,
        search tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(body, ''))) STORED,
        CONSTRAINT ck_posts_privacy CHECK (privacy IN ('public', 'followers', 'private'))
    );
    CREATE INDEX ix_posts_author_recent ON posts.posts (author_id, created_at DESC, id DESC);
    CREATE INDEX ix_posts_recent ON posts.posts (created_at DESC, id DESC);
    CREATE INDEX ix_posts_search ON posts.posts USING gin (search);
    CREATE TABLE posts.comments (
        id uuid PRIMARY KEY,
        post_id uuid NOT NULL REFERENCES posts.posts (id) ON DELETE CASCADE,
        author_id uuid NOT NULL,
        body text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX ix_comments_post ON posts.comments (post_id, created_at, id);
    CREATE INDEX ix_comments_author ON posts.comments (author_id);
    CREATE TABLE posts.reactions (
        post_id uuid NOT NULL REFERENCES posts.posts (id) ON DELETE CASCADE,
        user_id uuid NOT NULL,
        type varchar(10) NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_reactions PRIMARY KEY (post_id, user_id),
        CONSTRAINT ck_reactions_type CHECK (type IN ('like', 'love', 'happy', 'wow', 'sad', 'angry'))
    );
    CREATE INDEX ix_reactions_post_recent ON posts.reactions (post_id, created_at DESC, user_id DESC);
    CREATE INDEX ix_reactions_user_recent ON posts.reactions (user_id, created_at DESC, post_id DESC);
    CREATE TABLE posts.pull_authors (
        author_id uuid PRIMARY KEY,
        marked_at timestamptz NOT NULL DEFAULT now()
    );
    """


def upgrade() -> None:
    for statement in UPGRADE.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP SCHEMA posts CASCADE")
