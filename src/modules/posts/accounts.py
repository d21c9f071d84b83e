"""A deleted account's posts, comments and reactions go; the counts of others' posts follow."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select, text, update

from src.common.events.posts import PostDeleted
from src.infra.uow import UnitOfWork
from src.modules.posts.models import comments, posts, reactions

# Recount from the rows themselves (the post rows are locked first), so a reaction changed
# concurrently cannot leave the counts off.
_RECOUNT = text("""
UPDATE posts.posts p SET reaction_counts = coalesce(
    (SELECT jsonb_object_agg(type, n) FROM (
        SELECT type, count(*) AS n FROM posts.reactions r WHERE r.post_id = p.id GROUP BY type) c), '{}')
WHERE p.id = ANY(:ids)
""")


async def remove_user_content(tx: UnitOfWork, user_id: uuid.UUID) -> set[uuid.UUID]:
    """Delete the user's posts (PostDeleted each, for their media), comments and reactions; the
    ids of the posts deleted or recounted."""
    session = tx.session
    gone = (await session.execute(delete(posts).where(posts.c.author_id == user_id)
                                  .returning(posts.c.id, posts.c.media_ids))).all()
    for row in gone:
        tx.publish(PostDeleted(post_id=row.id, author_id=user_id, media_ids=list(row.media_ids)))
    counted = (await session.execute(
        delete(comments).where(comments.c.author_id == user_id).returning(comments.c.post_id))).scalars().all()
    per_post: dict[uuid.UUID, int] = {}
    for post_id in counted:
        per_post[post_id] = per_post.get(post_id, 0) + 1
    for post_id, n in per_post.items():
        await session.execute(update(posts).where(posts.c.id == post_id)
                              .values(comment_count=func.greatest(posts.c.comment_count - n, 0)))
    reacted = list((await session.scalars(select(reactions.c.post_id).where(reactions.c.user_id == user_id))).all())
    if reacted:
        await session.execute(select(posts.c.id).where(posts.c.id.in_(reacted)).order_by(posts.c.id)
                              .with_for_update())
        await session.execute(delete(reactions).where(reactions.c.user_id == user_id))
        await session.execute(_RECOUNT, {"ids": reacted})
    return {row.id for row in gone} | set(per_post) | set(reacted)
