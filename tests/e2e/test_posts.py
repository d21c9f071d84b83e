"""Posts over the real API: validation, CRUD, comments, reactions, counts, account deletion."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from src.common.events.users import UserDeleted
from src.infra.context import AppContext
from tests.e2e.harness import deliver_everywhere
from tests.e2e.posts_support import create_post, follow, ok, problem, users


async def test_post_validation(http: httpx.AsyncClient) -> None:
    (a,) = await users(http, 1)
    bad = [
        {"privacy": "public"},  # nothing in it
        {"privacy": "friends", "body": "x"},
        {"body": "x" * 5001},
        {"body": "x", "bg_color": "red"},
        {"body": "x", "feelings": "bored"},
        {"gif_url": "http://example.com/a.gif"},
        {"body": "x", "media_ids": [str(uuid.uuid4()) for _ in range(11)]},
        {"body": "x", "unknown": 1},
    ]
    for body in bad:
        response = await http.post("/posts", json=body, headers=a.headers)
        assert response.status_code == 400, (body, response.text)
    post = await create_post(http, a, body="x" * 5000, bg_color="#ffaa00", feelings="happy")
    assert post["bg_color"] == "#ffaa00" and post["feelings"] == "happy" and post["comment_count"] == 0
    gif = ok(await http.post("/posts", json={"gif_url": "https://media.example.com/a.gif"}, headers=a.headers), 201)
    assert gif["privacy"] == "public" and gif["body"] is None
    assert (await http.post("/posts", json={"body": "x"})).status_code == 401


async def test_edit_and_delete_by_the_author_only(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    a, b = await users(http, 2)
    post = await create_post(http, a, body="first")
    edited = ok(await http.patch(f"/posts/{post['id']}", json={"body": "second", "feelings": "loved"},
                                 headers=a.headers))
    assert edited["body"] == "second" and edited["feelings"] == "loved" and edited["edited_at"]
    problem(await http.patch(f"/posts/{post['id']}", json={"body": None}, headers=a.headers), 400, "empty_post")
    problem(await http.patch(f"/posts/{post['id']}", json={"body": "mine"}, headers=b.headers), 404, "post_not_found")
    problem(await http.delete(f"/posts/{post['id']}", headers=b.headers), 404, "post_not_found")
    ok(await http.post(f"/posts/{post['id']}/comments", json={"body": "hi"}, headers=b.headers), 201)
    ok(await http.put(f"/posts/{post['id']}/reactions", json={"type": "wow"}, headers=b.headers))
    ok(await http.delete(f"/posts/{post['id']}", headers=a.headers), 204)
    problem(await http.get(f"/posts/{post['id']}", headers=a.headers), 404, "post_not_found")
    pid = uuid.UUID(post["id"])
    assert await db.fetchval("SELECT count(*) FROM posts.comments WHERE post_id = $1", pid) == 0
    assert await db.fetchval("SELECT count(*) FROM posts.reactions WHERE post_id = $1", pid) == 0
    assert await db.fetchval("SELECT count(*) FROM infra.outbox WHERE name = 'posts.post_deleted.v1' "
                             "AND payload->>'post_id' = $1", post["id"]) == 1


async def test_author_list_newest_first_paginated(http: httpx.AsyncClient) -> None:
    (a,) = await users(http, 1)
    made = [await create_post(http, a) for _ in range(5)]
    seen, cursor = [], None
    while True:
        params = {"author_id": a.id, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = ok(await http.get("/posts", params=params, headers=a.headers))
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [p["id"] for p in reversed(made)]
    mine = ok(await http.get("/posts", headers=a.headers))  # no author_id: the caller's own
    assert [p["id"] for p in mine["items"]] == seen
    images = ok(await http.get("/posts", params={"author_id": a.id, "kind": "image"}, headers=a.headers))
    assert images["items"] == []  # none carries media
    assert (await http.get("/posts", params={"author_id": a.id, "kind": "audio"}, headers=a.headers)).status_code == 400


async def test_comments_oldest_first_counted_and_deletable(http: httpx.AsyncClient) -> None:
    a, b, c = await users(http, 3)
    post = await create_post(http, a)
    url = f"/posts/{post['id']}/comments"
    problem(await http.post(url, json={"body": "x" * 2001}, headers=b.headers), 400, "validation_failed")
    first = ok(await http.post(url, json={"body": "one"}, headers=b.headers), 201)
    second = ok(await http.post(url, json={"body": "two"}, headers=c.headers), 201)
    third = ok(await http.post(url, json={"body": "three"}, headers=b.headers), 201)
    page = ok(await http.get(url, params={"limit": 2}, headers=c.headers))
    rest = ok(await http.get(url, params={"cursor": page["next_cursor"]}, headers=c.headers))
    assert [x["id"] for x in page["items"] + rest["items"]] == [first["id"], second["id"], third["id"]]
    assert ok(await http.get(f"{url}/{second['id']}", headers=b.headers))["body"] == "two"
    assert ok(await http.get(f"/posts/{post['id']}", headers=a.headers))["comment_count"] == 3
    problem(await http.delete(f"{url}/{second['id']}", headers=b.headers), 404, "comment_not_found")  # not b's
    ok(await http.delete(f"{url}/{second['id']}", headers=c.headers), 204)  # its author
    ok(await http.delete(f"{url}/{third['id']}", headers=a.headers), 204)  # the post's author
    assert ok(await http.get(f"/posts/{post['id']}", headers=a.headers))["comment_count"] == 1
    problem(await http.get(f"{url}/{third['id']}", headers=a.headers), 404, "comment_not_found")


async def test_one_reaction_per_user_replaced_listed_and_removed(http: httpx.AsyncClient) -> None:
    a, b, c = await users(http, 3)
    post = await create_post(http, a)
    url = f"/posts/{post['id']}/reactions"
    problem(await http.put(url, json={"type": "meh"}, headers=b.headers), 400, "validation_failed")
    ok(await http.put(url, json={"type": "like"}, headers=b.headers))
    ok(await http.put(url, json={"type": "like"}, headers=b.headers))  # again: no change
    ok(await http.put(url, json={"type": "love"}, headers=c.headers))
    state = ok(await http.put(url, json={"type": "love"}, headers=b.headers))  # replaces b's like
    assert state["counts"] == {"love": 2}
    listed = ok(await http.get(url, headers=a.headers))
    assert listed["counts"] == {"love": 2} and {r["user"]["id"] for r in listed["items"]} == {b.id, c.id}
    assert ok(await http.get(url, params={"type": "like"}, headers=a.headers))["items"] == []
    assert ok(await http.get(f"/posts/{post['id']}", headers=b.headers))["my_reaction"] == "love"
    ok(await http.delete(url, headers=b.headers), 204)
    view = ok(await http.get(f"/posts/{post['id']}", headers=b.headers))
    assert view["reaction_counts"] == {"love": 1} and view["my_reaction"] is None
    given = ok(await http.get(f"/users/{c.id}/reactions", headers=a.headers))
    assert [(r["post_id"], r["type"]) for r in given["items"]] == [(post["id"], "love")]


async def test_fifty_concurrent_reaction_changes_leave_exact_counts(http: httpx.AsyncClient,
                                                                    db: asyncpg.Connection) -> None:
    author, *people = await users(http, 26)
    post = await create_post(http, author)
    url = f"/posts/{post['id']}/reactions"
    kinds = ["like", "love", "happy", "wow", "sad", "angry"]
    # 50 requests at once: each of 25 users reacts, then changes or removes, interleaved.
    calls = [http.put(url, json={"type": kinds[i % 6]}, headers=u.headers) for i, u in enumerate(people)]
    calls += [http.put(url, json={"type": kinds[(i + 1) % 6]}, headers=u.headers) if i % 3 else
              http.delete(url, headers=u.headers) for i, u in enumerate(people)]
    for response in await asyncio.gather(*calls):
        assert response.status_code in (200, 204), response.text
    truth = dict(await db.fetch("SELECT type, count(*) FROM posts.reactions WHERE post_id = $1 GROUP BY type",
                                uuid.UUID(post["id"])))
    view = ok(await http.get(f"/posts/{post['id']}", headers=author.headers))
    assert view["reaction_counts"] == {k: int(v) for k, v in truth.items()}
    assert ok(await http.get(url, headers=author.headers))["counts"] == view["reaction_counts"]
    assert sum(view["reaction_counts"].values()) == await db.fetchval(
        "SELECT count(*) FROM posts.reactions WHERE post_id = $1", uuid.UUID(post["id"]))


async def test_user_deleted_removes_posts_comments_reactions(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    a, b = await users(http, 2)
    body = await http.post("/auth/signup", json={"username": f"gone{uuid.uuid4().hex[:10]}",
                                                  "email": f"gone{uuid.uuid4().hex[:10]}@example.com",
                                                  "password": "Correct-Horse-Battery-9"})
    gone = body.json()
    headers = {"Authorization": f"Bearer {gone['access_token']}"}
    await follow(http, b, a)
    post = await create_post(http, a)
    own = ok(await http.post("/posts", json={"body": "mine"}, headers=headers), 201)
    ok(await http.post(f"/posts/{post['id']}/comments", json={"body": "bye"}, headers=headers), 201)
    ok(await http.post(f"/posts/{post['id']}/comments", json={"body": "stay"}, headers=b.headers), 201)
    ok(await http.put(f"/posts/{post['id']}/reactions", json={"type": "sad"}, headers=headers))
    ok(await http.put(f"/posts/{post['id']}/reactions", json={"type": "sad"}, headers=b.headers))
    response = await http.request("DELETE", "/users/me", json={"password": "Correct-Horse-Battery-9"},
                                  headers=headers)
    assert response.status_code == 204, response.text
    for _ in range(100):
        view = ok(await http.get(f"/posts/{post['id']}", headers=a.headers))
        if view["comment_count"] == 1 and view["reaction_counts"] == {"sad": 1}:
            break
        await asyncio.sleep(0.1)
    assert view["comment_count"] == 1 and view["reaction_counts"] == {"sad": 1}
    problem(await http.get(f"/posts/{own['id']}", headers=a.headers), 404, "post_not_found")
    assert await db.fetchval("SELECT count(*) FROM posts.posts WHERE author_id = $1",
                             uuid.UUID(gone["user"]["id"])) == 0


async def test_user_deleted_delivered_twice_corrects_counts_once(http: httpx.AsyncClient, ctx: AppContext,
                                                                 db: asyncpg.Connection) -> None:
    a, b, g = await users(http, 3)
    post = await create_post(http, a)
    for user in (b, g):
        ok(await http.post(f"/posts/{post['id']}/comments", json={"body": "x"}, headers=user.headers), 201)
        ok(await http.put(f"/posts/{post['id']}/reactions", json={"type": "happy"}, headers=user.headers))
    event = UserDeleted(user_id=uuid.UUID(g.id))
    assert await deliver_everywhere(ctx, db, event) == []  # the cleanup is a worker listener
    assert await deliver_everywhere(ctx, db, event) == []
    view = ok(await http.get(f"/posts/{post['id']}", headers=a.headers))
    assert view["comment_count"] == 1 and view["reaction_counts"] == {"happy": 1}
