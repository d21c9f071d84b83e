"""The visibility matrix: {public, followers, private} x {author, follower, non-follower, blocked by the
author, blocking the author, signed out} over single post, author list, feed, search, comments,
reactions (and reactions given) and realtime (post:new, post:watch, comment:new)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.harness import ApiProcess, EventRecorder, User, WorkerProcess, connect_socket
from tests.e2e.posts_support import block, create_post, follow, ok, problem, users

PRIVACIES = ("public", "followers", "private")
# Who sees which privacy; the feed also needs the viewer to follow the author (or be the author).
SEES = {
    "author": {"public", "followers", "private"},
    "follower": {"public", "followers"},
    "stranger": {"public"},
    "blocked": set(),
    "blocker": set(),
    "signed_out": {"public"},
}
IN_FEED = {"author": {"public", "followers", "private"}, "follower": {"public", "followers"}}


@pytest.fixture(scope="module")
async def world(http: httpx.AsyncClient, api: ApiProcess, worker: WorkerProcess) -> dict[str, Any]:
    author, follower, stranger, blocked, blocker = await users(http, 5)
    for user in (follower, blocked, blocker):
        await follow(http, user, author)
    await block(http, author, blocked)
    await block(http, blocker, author)
    viewers: dict[str, User | None] = {"author": author, "follower": follower, "stranger": stranger,
                                       "blocked": blocked, "blocker": blocker, "signed_out": None}
    recorders = {name: EventRecorder() for name, u in viewers.items() if u is not None}
    sockets = [await connect_socket(api.base_url, u.token, recorder=recorders[name])
               for name, u in viewers.items() if u is not None]
    word = "zebra" + uuid.uuid4().hex[:10]
    posts = {p: await create_post(http, author, p, body=f"{word} {p}") for p in PRIVACIES}
    ok(await http.put(f"/posts/{posts['public']['id']}/reactions", json={"type": "like"}, headers=author.headers))
    for p in PRIVACIES:
        ok(await http.put(f"/posts/{posts[p]['id']}/reactions", json={"type": "love"}, headers=author.headers))
    yield {"viewers": viewers, "posts": posts, "word": word, "recorders": recorders, "author": author}
    for sock in sockets:
        await sock.disconnect()


def _headers(user: User | None) -> dict[str, str]:
    return user.headers if user else {}


def _visible(name: str) -> set[str]:
    return SEES[name]


@pytest.mark.parametrize("name", list(SEES))
async def test_single_post_comments_and_reactions(http: httpx.AsyncClient, world: dict[str, Any], name: str) -> None:
    viewer = world["viewers"][name]
    for privacy, post in world["posts"].items():
        url = f"/posts/{post['id']}"
        if privacy in _visible(name):
            assert ok(await http.get(url, headers=_headers(viewer)))["id"] == post["id"]
            ok(await http.get(f"{url}/comments", headers=_headers(viewer)))
            assert ok(await http.get(f"{url}/reactions", headers=_headers(viewer)))["counts"] == {"love": 1}
        else:
            problem(await http.get(url, headers=_headers(viewer)), 404, "post_not_found")
            problem(await http.get(f"{url}/comments", headers=_headers(viewer)), 404, "post_not_found")
            problem(await http.get(f"{url}/reactions", headers=_headers(viewer)), 404, "post_not_found")
        if viewer is None:
            assert (await http.post(f"{url}/comments", json={"body": "hi"})).status_code == 401
            assert (await http.put(f"{url}/reactions", json={"type": "wow"})).status_code == 401
        elif privacy in _visible(name):
            comment = ok(await http.post(f"{url}/comments", json={"body": "hi"}, headers=viewer.headers), 201)
            ok(await http.delete(f"{url}/comments/{comment['id']}", headers=viewer.headers), 204)
        else:
            problem(await http.post(f"{url}/comments", json={"body": "hi"}, headers=viewer.headers), 404,
                    "post_not_found")
            problem(await http.put(f"{url}/reactions", json={"type": "wow"}, headers=viewer.headers), 404,
                    "post_not_found")


@pytest.mark.parametrize("name", list(SEES))
async def test_author_list_feed_search_and_given_reactions(http: httpx.AsyncClient, world: dict[str, Any],
                                                           name: str) -> None:
    viewer, posts, author = world["viewers"][name], world["posts"], world["author"]
    expected = {posts[p]["id"] for p in _visible(name)}
    listed = ok(await http.get("/posts", params={"author_id": author.id}, headers=_headers(viewer)))
    assert {p["id"] for p in listed["items"]} == expected
    given = await http.get(f"/users/{author.id}/reactions", headers=_headers(viewer))
    if viewer is None:
        assert given.status_code == 401
        assert (await http.get("/posts/feed")).status_code == 401
        assert (await http.get("/search", params={"type": "posts", "q": world["word"]})).status_code == 401
        return
    if name in ("blocked", "blocker"):
        problem(given, 404, "user_not_found")
    else:
        assert {r["post_id"] for r in ok(given)["items"]} == expected
    feed = ok(await http.get("/posts/feed", params={"limit": 100}, headers=viewer.headers))
    assert {p["id"] for p in feed["items"]} & {p["id"] for p in posts.values()} == {
        posts[p]["id"] for p in IN_FEED.get(name, set())}
    found = ok(await http.get("/search", params={"type": "posts", "q": world["word"]}, headers=viewer.headers))
    assert {p["id"] for p in found["items"]} == expected


async def test_realtime_reaches_only_viewers(http: httpx.AsyncClient, world: dict[str, Any]) -> None:
    recorders, posts = world["recorders"], world["posts"]

    def got(name: str, privacy: str) -> bool:
        return any(e["id"] == posts[privacy]["id"] for e in recorders[name].events.get("post:new", []))

    # post:new goes out in one publish per batch of followers: once the follower (and the author, for
    # the private post) has it, everyone who would get it has it.
    for privacy in ("public", "followers"):
        await recorders["follower"].wait_for("post:new", lambda e, p=privacy: e["id"] == posts[p]["id"], timeout=20)
    await recorders["author"].wait_for("post:new", lambda e: e["id"] == posts["private"]["id"], timeout=20)
    assert not got("follower", "private")
    for name in ("stranger", "blocked", "blocker"):
        assert not any(got(name, p) for p in PRIVACIES), name


async def test_edits_and_deletions_reach_only_followers_allowed(http: httpx.AsyncClient,
                                                                 world: dict[str, Any]) -> None:
    recorders, author = world["recorders"], world["author"]
    post = await create_post(http, author, "followers")
    ok(await http.patch(f"/posts/{post['id']}", json={"body": "edited"}, headers=author.headers))
    updated = await recorders["follower"].wait_for("post:updated", lambda e: e["id"] == post["id"], timeout=20)
    assert updated["body"] == "edited"
    await recorders["author"].wait_for("post:updated", lambda e: e["id"] == post["id"], timeout=20)
    ok(await http.delete(f"/posts/{post['id']}", headers=author.headers), 204)
    await recorders["follower"].wait_for("post:deleted", lambda e: e["id"] == post["id"], timeout=20)
    private = await create_post(http, author, "private")
    ok(await http.delete(f"/posts/{private['id']}", headers=author.headers), 204)
    await recorders["author"].wait_for("post:deleted", lambda e: e["id"] == private["id"], timeout=20)
    # The followers get each event in one publish per batch: once the follower has it, all have it.
    assert not any(e["id"] == private["id"] for e in recorders["follower"].events.get("post:deleted", []))
    for name in ("stranger", "blocked", "blocker"):
        for event in ("post:updated", "post:deleted"):
            assert not recorders[name].events.get(event), (name, event)


async def test_watching_a_post_needs_seeing_it(http: httpx.AsyncClient, api: ApiProcess, world: dict[str, Any]) -> None:
    viewers, posts = world["viewers"], world["posts"]
    for name, viewer in viewers.items():
        if viewer is None:
            continue
        recorder = EventRecorder()
        sock = await connect_socket(api.base_url, viewer.token, recorder=recorder)
        try:
            for privacy, post in posts.items():
                ack = await sock.call("post:watch", {"post_id": post["id"]}, timeout=5)
                if privacy in _visible(name):
                    assert ack["ok"], (name, privacy, ack)
                else:
                    assert ack == {"ok": False, "error": {"code": "post_not_found", "detail": "No such post"}}
            visible = [p for p in PRIVACIES if p in _visible(name)]
            if visible:
                target = posts[visible[-1]]
                comment = ok(await http.post(f"/posts/{target['id']}/comments", json={"body": "live"},
                                             headers=world["author"].headers), 201)
                seen = await recorder.wait_for("comment:new", lambda e, c=comment: e["id"] == c["id"])
                assert seen["post_id"] == target["id"]
                assert (await sock.call("post:unwatch", {"post_id": target["id"]}, timeout=5))["ok"]
        finally:
            await sock.disconnect()
