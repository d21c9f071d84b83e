"""Message search: full text over what the caller may read, newest first, paginated."""

from __future__ import annotations

import httpx

from tests.e2e.messaging_support import h, ok, open_direct, problem, send, users


async def test_search_finds_words_in_the_callers_conversations_only(http: httpx.AsyncClient) -> None:
    a, b, c = await users(http, 3)
    ab = (await open_direct(http, a, b))["id"]
    bc = (await open_direct(http, b, c))["id"]
    word = "pineapple" + a["user"]["id"][-6:].replace("-", "")  # unique to this test
    older = await send(http, a, ab, f"do you like {word} pizza?")
    newer = await send(http, b, ab, f"{word.upper()} never!")
    hidden = await send(http, a, ab, f"{word} again")
    gone = await send(http, a, ab, f"{word} deleted")
    await send(http, b, bc, f"{word} in a conversation a is not in")
    await send(http, a, ab, "nothing to see here")
    ok(await http.delete(f"/conversations/{ab}/messages/{hidden['id']}", params={"scope": "me"}, headers=h(a)), 204)
    ok(await http.delete(f"/conversations/{ab}/messages/{gone['id']}", params={"scope": "everyone"}, headers=h(a)),
       204)

    found = ok(await http.get("/search", params={"type": "messages", "q": word}, headers=h(a)))
    assert [m["id"] for m in found["items"]] == [newer["id"], older["id"]]  # newest first
    assert found["next_cursor"] is None
    for_b = ok(await http.get("/search", params={"q": f"{word} pizza"}, headers=h(b)))  # every word must match
    assert [m["id"] for m in for_b["items"]] == [older["id"]]
    everything_b = ok(await http.get("/search", params={"q": word}, headers=h(b)))
    assert len(everything_b["items"]) == 4  # b still sees "again", hidden only for a; not the deleted one

    first = ok(await http.get("/search", params={"q": word, "limit": 1}, headers=h(b)))
    assert len(first["items"]) == 1 and first["next_cursor"]
    pages, cursor = list(first["items"]), first["next_cursor"]
    while cursor:
        page = ok(await http.get("/search", params={"q": word, "limit": 1, "cursor": cursor}, headers=h(b)))
        pages += page["items"]
        cursor = page["next_cursor"]
    assert [m["id"] for m in pages] == [m["id"] for m in everything_b["items"]]


async def test_search_refuses_what_it_cannot_do(http: httpx.AsyncClient) -> None:
    (a,) = await users(http, 1)
    problem(await http.get("/search", params={"type": "anything", "q": "x"}, headers=h(a)), 400, "unsupported_type")
    problem(await http.get("/search", params={"q": "   "}, headers=h(a)), 400, "validation_failed")
    problem(await http.get("/search", headers=h(a)), 400, "validation_failed")
    assert (await http.get("/search", params={"q": "x"})).status_code == 401
