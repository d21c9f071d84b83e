"""A user outside a conversation sees nothing of it: 404 on every endpoint, refused socket events,
and none of its events."""

from __future__ import annotations

import httpx

from tests.e2e.harness import ApiProcess
from tests.e2e.messaging_support import call, device, h, history, ok, open_direct, send, settle, uid, users


async def test_a_non_member_gets_404_everywhere(http: httpx.AsyncClient) -> None:
    a, b, outsider = await users(http, 3)
    cid = (await open_direct(http, a, b))["id"]
    message = await send(http, a, cid, "private")
    group = ok(await http.post("/groups", json={"name": "g", "member_ids": [uid(b)]}, headers=h(a)), 201)
    base = f"/conversations/{cid}"
    msg = f"{base}/messages/{message['id']}"
    requests = [
        ("GET", base, None, None), ("GET", f"{base}/messages", None, None),
        ("POST", f"{base}/messages", {"client_msg_id": "x", "body": "let me in"}, None),
        ("PATCH", msg, {"body": "mine"}, None),
        ("DELETE", msg, None, {"scope": "me"}), ("DELETE", msg, None, {"scope": "everyone"}),
        ("PUT", f"{msg}/reactions/👍", None, None), ("DELETE", f"{msg}/reactions/👍", None, None),
        ("POST", f"{base}/read", {"up_to_seq": 1}, None), ("POST", f"{base}/delivered", {"up_to_seq": 1}, None),
        ("GET", f"/groups/{group['id']}", None, None), ("GET", f"/conversations/{group['id']}", None, None),
        ("POST", f"/conversations/{group['id']}/messages", {"client_msg_id": "y", "body": "hi"}, None),
    ]
    for method, path, body, params in requests:
        response = await http.request(method, path, json=body, params=params, headers=h(outsider))
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] in ("conversation_not_found", "group_not_found"), (method, path)
    # A member asking for a message of another conversation gets 404 too.
    other = (await open_direct(http, a, outsider))["id"]
    response = await http.patch(f"/conversations/{other}/messages/{message['id']}", json={"body": "x"},
                                headers=h(a))
    assert (response.status_code, response.json()["code"]) == (404, "message_not_found")

    assert ok(await http.get("/conversations", headers=h(outsider)))["items"][0]["id"] == other
    assert ok(await http.get("/search", params={"q": "private"}, headers=h(outsider)))["items"] == []
    assert [m["body"] for m in await history(http, b, cid)] == ["private"]  # nothing changed
    assert (await history(http, a, cid))[0]["reactions"] == {}


async def test_a_non_member_cannot_act_or_listen_over_the_socket(http: httpx.AsyncClient, api: ApiProcess) -> None:
    a, b, outsider = await users(http, 3)
    cid = (await open_direct(http, a, b))["id"]
    async with device(api.base_url, outsider) as (sock, heard), device(api.base_url, b) as (_, peer), \
            device(api.base_url, a) as (member, _):
        for event, payload in [
            ("message:send", {"conversation_id": cid, "client_msg_id": "x", "body": "hi"}),
            ("message:read", {"conversation_id": cid, "up_to_seq": 1}),
            ("message:delivered", {"conversation_id": cid, "up_to_seq": 1}),
            ("typing:start", {"conversation_id": cid}), ("typing:stop", {"conversation_id": cid}),
        ]:
            ack = await call(sock, event, payload)
            assert ack["ok"] is False and ack["error"]["code"] == "conversation_not_found", (event, ack)
        await call(member, "typing:start", {"conversation_id": cid})
        sent = await call(member, "message:send", {"conversation_id": cid, "client_msg_id": "m", "body": "for b"})
        await peer.wait_for("message:new", lambda m: m["id"] == sent["data"]["id"])
        await peer.wait_for("typing")
        await settle()
        assert dict(heard.events) == {}  # the outsider heard nothing at all
    assert [m["body"] for m in await history(http, a, cid)] == ["for b"]
