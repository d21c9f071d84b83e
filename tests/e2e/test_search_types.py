"""`GET /search?type=users|groups|posts`: each through its module's query, only what the caller may see."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.harness import signup
from tests.e2e.posts_support import block, create_post, ok, users


async def test_users_search_excludes_blocks_and_hidden_profiles(http: httpx.AsyncClient) -> None:
    prefix = "srch" + uuid.uuid4().hex[:8]
    me = await signup(http, f"{prefix}me")
    names = ["open", "blocked", "blocker", "hidden"]
    people = {n: await signup(http, f"{prefix}{n}") for n in names}
    headers = {"Authorization": f"Bearer {me['access_token']}"}

    def h(n: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {people[n]['access_token']}"}

    assert (await http.put(f"/users/{people['blocked']['user']['id']}/block", headers=headers)).status_code < 300
    assert (await http.put(f"/users/{me['user']['id']}/block", headers=h("blocker"))).status_code < 300
    ok(await http.patch("/privacy/settings", json={"profile_visibility": "nobody"}, headers=h("hidden")))
    found = ok(await http.get("/search", params={"type": "users", "q": prefix}, headers=headers))
    assert {u["username"] for u in found["items"]} == {f"{prefix}me", f"{prefix}open"}


async def test_groups_search_finds_the_callers_groups_by_name(http: httpx.AsyncClient) -> None:
    a, b, c = await users(http, 3)
    word = "club" + uuid.uuid4().hex[:8]
    mine = ok(await http.post("/groups", json={"name": f"The {word} Fans", "member_ids": [b.id]}, headers=a.headers),
              201)
    ok(await http.post("/groups", json={"name": f"{word} secret", "member_ids": [c.id]}, headers=b.headers), 201)
    found = ok(await http.get("/search", params={"type": "groups", "q": word.upper()}, headers=a.headers))
    assert [g["id"] for g in found["items"]] == [mine["id"]]
    both = ok(await http.get("/search", params={"type": "groups", "q": word, "limit": 1}, headers=b.headers))
    rest = ok(await http.get("/search", params={"type": "groups", "q": word, "cursor": both["next_cursor"]},
                             headers=b.headers))
    assert len(both["items"] + rest["items"]) == 2 and rest["next_cursor"] is None


async def test_posts_search_full_text_paginated(http: httpx.AsyncClient) -> None:
    a, b = await users(http, 2)
    word = "kiwi" + uuid.uuid4().hex[:8]
    made = [await create_post(http, a, body=f"I like {word} number {i}") for i in range(3)]
    await create_post(http, a, body="nothing here")
    await block(http, b, a)
    first = ok(await http.get("/search", params={"type": "posts", "q": word, "limit": 2}, headers=a.headers))
    rest = ok(await http.get("/search", params={"type": "posts", "q": word, "cursor": first["next_cursor"]},
                             headers=a.headers))
    assert [p["id"] for p in first["items"] + rest["items"]] == [p["id"] for p in reversed(made)]
    assert ok(await http.get("/search", params={"type": "posts", "q": word}, headers=b.headers))["items"] == []
