"""REST routes of the posts module (`/api/v1/posts…`, `/api/v1/users/{id}/reactions`).

Reads of single posts, author lists, comments and reactions also answer signed-out callers
(public posts only); the feed, search and every write need a signed-in caller.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, MediaType, Response, delete, get, patch, post, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from src.common.auth import Principal
from src.common.errors import ValidationFailed
from src.common.pagination import Page
from src.infra.http.raw_routes import RAW_ASGI
from src.modules.posts.comments import CommentsService
from src.modules.posts.feed import FeedService
from src.modules.posts.feed_route import feed_raw
from src.modules.posts.reactions import ReactionsService
from src.modules.posts.schemas import (
    CommentView,
    GivenReaction,
    MediaKind,
    NewComment,
    NewPost,
    PostPatch,
    PostReactionState,
    PostView,
    ReactionPage,
    ReactionType,
    SetReaction,
)
from src.modules.posts.service import PostsService

Limit = Annotated[int | None, Parameter(ge=1, le=1000, description="page size (at most 100 are returned)")]
Cursor = Annotated[str | None, Parameter(max_length=512)]


def _uid(viewer: Principal | None) -> uuid.UUID | None:
    return viewer.user_id if viewer else None


class PostsController(Controller):
    path = "/posts"
    tags = ["posts"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create(self, data: NewPost, principal: Principal, posts_service: PostsService) -> PostView:
        """Publish a post (body, gif or media; privacy public, followers or private)."""
        return await posts_service.create(principal.user_id, data)

    @get("/feed", opt={RAW_ASGI: feed_raw})  # the common request is answered by feed_raw (feed_route.py)
    async def feed(self, principal: Principal, feed_service: FeedService, limit: Limit = None,
                   cursor: Cursor = None) -> Response[Page[PostView]]:
        """Your own and followed users' posts you may see, newest first."""
        # The body is assembled from pre-encoded posts (feed.py); the annotation documents it.
        body = await feed_service.feed(principal.user_id, limit, cursor)
        return Response(content=body, media_type=MediaType.JSON)  # type: ignore[arg-type]

    @get("/")
    async def by_author(self, viewer: Principal | None, posts_service: PostsService,
                        author_id: uuid.UUID | None = None, kind: MediaKind | None = None,
                        limit: Limit = None, cursor: Cursor = None) -> Page[PostView]:
        """A user's posts you may see, newest first (yours without `author_id`); `kind` keeps those with
        images or videos."""
        author = author_id or _uid(viewer)
        if author is None:
            raise ValidationFailed("author_id is required when signed out", field="author_id")
        return await posts_service.by_author(_uid(viewer), author, kind, limit, cursor)

    @get("/{post_id:uuid}")
    async def get_post(self, post_id: uuid.UUID, viewer: Principal | None, posts_service: PostsService) -> PostView:
        """One post; 404 when it does not exist or you may not see it."""
        return await posts_service.get(_uid(viewer), post_id)

    @patch("/{post_id:uuid}")
    async def update(self, post_id: uuid.UUID, data: PostPatch, principal: Principal,
                     posts_service: PostsService) -> PostView:
        """Edit your post."""
        return await posts_service.update(principal.user_id, post_id, data)

    @delete("/{post_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_post(self, post_id: uuid.UUID, principal: Principal, posts_service: PostsService) -> None:
        """Delete your post with its comments and reactions."""
        await posts_service.delete(principal.user_id, post_id)

    @post("/{post_id:uuid}/comments", status_code=HTTP_201_CREATED)
    async def comment(self, post_id: uuid.UUID, data: NewComment, principal: Principal,
                      comments_service: CommentsService) -> CommentView:
        """Comment on a post you may see."""
        return await comments_service.create(principal.user_id, post_id, data.body)

    @get("/{post_id:uuid}/comments")
    async def comments(self, post_id: uuid.UUID, viewer: Principal | None, comments_service: CommentsService,
                       limit: Limit = None, cursor: Cursor = None) -> Page[CommentView]:
        """A post's comments, oldest first."""
        return await comments_service.list(_uid(viewer), post_id, limit, cursor)

    @get("/{post_id:uuid}/comments/{comment_id:uuid}")
    async def get_comment(self, post_id: uuid.UUID, comment_id: uuid.UUID, viewer: Principal | None,
                          comments_service: CommentsService) -> CommentView:
        """One comment."""
        return await comments_service.get(_uid(viewer), post_id, comment_id)

    @delete("/{post_id:uuid}/comments/{comment_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_comment(self, post_id: uuid.UUID, comment_id: uuid.UUID, principal: Principal,
                             comments_service: CommentsService) -> None:
        """Delete a comment: yours, or any on your post."""
        await comments_service.delete(principal.user_id, post_id, comment_id)

    @put("/{post_id:uuid}/reactions")
    async def react(self, post_id: uuid.UUID, data: SetReaction, principal: Principal,
                    reactions_service: ReactionsService) -> PostReactionState:
        """React to a post (one reaction per user: a new type replaces the old)."""
        return await reactions_service.set(principal.user_id, post_id, data.type)

    @delete("/{post_id:uuid}/reactions", status_code=HTTP_204_NO_CONTENT)
    async def unreact(self, post_id: uuid.UUID, principal: Principal, reactions_service: ReactionsService) -> None:
        """Take your reaction off a post."""
        await reactions_service.set(principal.user_id, post_id, None)

    @get("/{post_id:uuid}/reactions")
    async def reactions(self, post_id: uuid.UUID, viewer: Principal | None, reactions_service: ReactionsService,
                        type: ReactionType | None = None, limit: Limit = None,
                        cursor: Cursor = None) -> ReactionPage:
        """Who reacted to a post, newest first, with the count per type."""
        return await reactions_service.list(_uid(viewer), post_id, type, limit, cursor)


class UserReactionsController(Controller):
    path = "/users"
    tags = ["posts"]

    @get("/{user_id:uuid}/reactions")
    async def given(self, user_id: uuid.UUID, principal: Principal, reactions_service: ReactionsService,
                    limit: Limit = None, cursor: Cursor = None) -> Page[GivenReaction]:
        """Reactions a user gave, on posts you may see, newest first."""
        return await reactions_service.given_by(principal.user_id, user_id, limit, cursor)
