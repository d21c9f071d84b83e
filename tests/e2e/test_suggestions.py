"""`GET /users/suggestions`: people followed by people I follow come first; never me,
people I already follow, or people blocked either way."""

from __future__ import annotations

import httpx

from tests.e2e.harness import auth_headers, signup


async def test_suggestions_rank_second_hop_first_and_exclude_followed_and_blocked(http: httpx.AsyncClient) -> None:
    me, friend1, friend2, popular_pick, lonely_pick, blocker = [await signup(http) for _ in range(6)]
    mine = auth_headers(me["access_token"])

    async def follow(who: dict, whom: dict) -> None:
        response = await http.put(f"/users/{whom['user']['id']}/follow", headers=auth_headers(who["access_token"]))
        assert response.status_code in (200, 201), response.text

    await follow(me, friend1)
    await follow(me, friend2)
    await follow(friend1, popular_pick)
    await follow(friend2, popular_pick)
    await follow(friend1, lonely_pick)
    await follow(friend1, blocker)
    assert (await http.put(f"/users/{me['user']['id']}/block",
                           headers=auth_headers(blocker["access_token"]))).status_code == 200

    response = await http.get("/users/suggestions", params={"limit": 50}, headers=mine)
    assert response.status_code == 200, response.text
    ids = [p["id"] for p in response.json()["items"]]
    assert ids[:2] == [popular_pick["user"]["id"], lonely_pick["user"]["id"]]
    for excluded in (me, friend1, friend2, blocker):
        assert excluded["user"]["id"] not in ids
    assert len(ids) == len(set(ids))


async def test_suggestions_need_a_token_and_cap_the_limit(http: httpx.AsyncClient) -> None:
    assert (await http.get("/users/suggestions")).status_code == 401
    me = await signup(http)
    response = await http.get("/users/suggestions", params={"limit": 0}, headers=auth_headers(me["access_token"]))
    assert response.status_code == 400
    assert response.json()["code"] == "validation_failed"
