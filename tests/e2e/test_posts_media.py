"""Posts carrying media over the real API and worker: the view shows it, `kind` filters, only the
author's post media is accepted, the media follows the post's visibility, and goes with the post."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest

from tests.e2e.harness import User
from tests.e2e.media_support import fetch, jpeg_with_gps, upload, wait_processed
from tests.e2e.posts_support import create_post, eventually, follow, ok, problem, users

pytestmark = pytest.mark.usefixtures("worker")


async def processed_image(http: httpx.AsyncClient, owner: User, purpose: str = "post") -> str:
    media = await upload(http, owner, jpeg_with_gps(), purpose=purpose)
    assert (await wait_processed(http, owner, media["id"]))["status"] == "ready"
    return str(media["id"])


async def media_status(http: httpx.AsyncClient, viewer: User, media_id: str) -> int:
    return (await http.get(f"/media/{media_id}", headers=viewer.headers)).status_code


async def test_a_post_shows_its_image_and_kind_filters(http: httpx.AsyncClient) -> None:
    author, reader = await users(http, 2)
    media_id = await processed_image(http, author)
    with_image = await create_post(http, author, media_ids=[media_id])
    assert with_image["media_ids"] == [media_id]
    assert [(m["id"], m["kind"], m["status"]) for m in with_image["media"]] == [(media_id, "image", "ready")]
    text_only = await create_post(http, author)

    seen = ok(await http.get(f"/posts/{with_image['id']}", headers=reader.headers))
    assert seen["media"][0]["id"] == media_id and seen["media"][0]["width"] == 480  # EXIF-rotated 640x480
    params = {"author_id": author.id}
    everything = ok(await http.get("/posts", params=params, headers=reader.headers))
    assert [p["id"] for p in everything["items"]] == [text_only["id"], with_image["id"]]
    images = ok(await http.get("/posts", params={**params, "kind": "image"}, headers=reader.headers))
    assert [p["id"] for p in images["items"]] == [with_image["id"]]
    videos = ok(await http.get("/posts", params={**params, "kind": "video"}, headers=reader.headers))
    assert videos["items"] == []
    problem(await http.get("/posts", params={**params, "kind": "gif"}, headers=reader.headers), 400,
            "validation_failed")


async def test_media_not_the_authors_or_not_for_posts_is_refused(http: httpx.AsyncClient) -> None:
    author, other = await users(http, 2)
    others = await processed_image(http, other)
    for_messages = await processed_image(http, author, purpose="message")
    mine = await processed_image(http, author)
    for ids in ([others], [for_messages], [mine, others], [str(uuid.uuid4())]):
        problem(await http.post("/posts", json={"privacy": "public", "media_ids": ids}, headers=author.headers),
                400, "invalid_media")
    problem(await http.post("/posts", json={"privacy": "public", "media_ids": [mine, mine]},
                            headers=author.headers), 400, "validation_failed")
    assert ok(await http.get("/posts", params={"author_id": author.id}, headers=author.headers))["items"] == []
    alone = ok(await http.post("/posts", json={"privacy": "public", "media_ids": [mine]}, headers=author.headers), 201)
    assert alone["body"] is None and alone["media_ids"] == [mine]  # media alone is a post


async def test_post_media_follows_the_posts_visibility(http: httpx.AsyncClient) -> None:
    author, follower, stranger = await users(http, 3)
    await follow(http, follower, author)
    media_id = await processed_image(http, author)
    post = await create_post(http, author, privacy="followers", media_ids=[media_id])
    problem(await http.get(f"/posts/{post['id']}", headers=stranger.headers), 404, "post_not_found")

    async def follower_sees() -> bool:  # the attachment is recorded by the worker
        return await media_status(http, follower, media_id) == 200

    await eventually(follower_sees, what="the follower seeing the post's media")
    view = ok(await http.get(f"/media/{media_id}", headers=follower.headers))
    assert (await fetch(view["variants"]["display"]["url"])).status_code == 200
    assert await media_status(http, stranger, media_id) == 404


async def test_deleting_the_post_removes_its_media(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    author, reader = await users(http, 2)
    media_id = await processed_image(http, author)
    post = await create_post(http, author, media_ids=[media_id])

    async def reader_sees() -> bool:
        return await media_status(http, reader, media_id) == 200

    await eventually(reader_sees, what="a reader seeing the public post's media")
    ok(await http.delete(f"/posts/{post['id']}", headers=author.headers), 204)

    async def gone() -> bool:
        return await media_status(http, author, media_id) == 404

    await eventually(gone, what="the deleted post's media removed")
    assert await media_status(http, reader, media_id) == 404
    assert await db.fetchval("SELECT count(*) FROM media.items WHERE id = $1", uuid.UUID(media_id)) == 0


async def test_media_carried_by_two_posts_stays_until_the_last_goes(http: httpx.AsyncClient) -> None:
    author, reader = await users(http, 2)
    media_id = await processed_image(http, author)
    first = await create_post(http, author, media_ids=[media_id])
    second = await create_post(http, author, media_ids=[media_id])

    async def reader_sees() -> bool:
        return await media_status(http, reader, media_id) == 200

    await eventually(reader_sees, what="a reader seeing the media")
    ok(await http.delete(f"/posts/{first['id']}", headers=author.headers), 204)
    # A later marker: media of a third post removed with it (same listener, handled after).
    marker_media = await processed_image(http, author)
    marker = await create_post(http, author, media_ids=[marker_media])
    ok(await http.delete(f"/posts/{marker['id']}", headers=author.headers), 204)

    async def marker_gone() -> bool:
        return await media_status(http, author, marker_media) == 404

    await eventually(marker_gone, what="the marker post's media removed")
    assert await media_status(http, reader, media_id) == 200  # the second post still carries it
    assert ok(await http.get(f"/posts/{second['id']}", headers=reader.headers))["media"][0]["id"] == media_id
    ok(await http.delete(f"/posts/{second['id']}", headers=author.headers), 204)

    async def gone() -> bool:
        return await media_status(http, author, media_id) == 404

    await eventually(gone, what="the media removed with its last post")
