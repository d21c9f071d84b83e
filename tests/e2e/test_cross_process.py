"""Two API processes, no balancer: users connected to different processes chat both ways (emits
cross through Redis), and a `/sync` cursor obtained on one process works on the other."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.e2e.harness import ApiProcess, EventRecorder, auth_headers, connect_socket, signup


async def _sync(client: httpx.AsyncClient, user: dict[str, Any], cursor: str | None = None) -> dict[str, Any]:
    params = {"cursor": cursor} if cursor else {}
    response = await client.get("/sync", params=params, headers=auth_headers(user["access_token"]))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_clients_on_two_processes_chat_and_share_sync_cursors(
        http: httpx.AsyncClient, api: ApiProcess, api_factory: Callable[..., ApiProcess]) -> None:
    second = api_factory()
    async with httpx.AsyncClient(base_url=second.base_url + "/api/v1", timeout=15) as http2:
        a, b = await signup(http), await signup(http2)
        response = await http2.post("/conversations", json={"user_id": b["user"]["id"]},
                                    headers=auth_headers(a["access_token"]))
        assert response.status_code in (200, 201), response.text
        cid = response.json()["id"]
        b_cursor = (await _sync(http2, b))["next_cursor"]  # b's head, from the second process

        a_events, b_events = EventRecorder(), EventRecorder()
        a_socket = await connect_socket(api.base_url, a["access_token"], recorder=a_events)
        b_socket = await connect_socket(second.base_url, b["access_token"], recorder=b_events)
        try:
            sent: list[dict[str, Any]] = []
            for sock, body, inbox in ((a_socket, "hi from process 1", b_events),
                                      (b_socket, "hello from process 2", a_events),
                                      (a_socket, "and back", b_events)):
                ack = await sock.call("message:send", {"conversation_id": cid, "client_msg_id": body,
                                                       "body": body}, timeout=10)
                assert ack["ok"] is True, ack
                sent.append(ack["data"])
                assert await inbox.wait_for("message:new", lambda m, i=ack["data"]["id"]: m["id"] == i) == ack["data"]
            response = await http.post(f"/conversations/{cid}/messages", json={"client_msg_id": "rest",
                                       "body": "over REST on process 1"}, headers=auth_headers(b["access_token"]))
            assert response.status_code == 201, response.text
            sent.append(response.json())
            await a_events.wait_for("message:new", lambda m: m["id"] == sent[-1]["id"])
        finally:
            await a_socket.disconnect()
            await b_socket.disconnect()
        assert [m["seq"] for m in sent] == [1, 2, 3, 4]

        # The cursor from the second process, read on the first; its successor, on the second again.
        page = await _sync(http, b, b_cursor)
        missed = [item["data"] for item in page["items"] if item["type"] == "message:new"]
        assert [m["id"] for m in missed] == [m["id"] for m in sent]
        assert page["has_more"] is False
        assert (await _sync(http2, b, page["next_cursor"]))["items"] == []
        assert (await _sync(http2, b, b_cursor))["items"] == page["items"]  # replayable on either process
