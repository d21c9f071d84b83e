"""The official Socket.IO JavaScript client (tests/js, socket.io-client pinned) talks to the API:
token in `auth`, acked `message:send`, `message:new` from a Python client; a bad token is refused."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import ApiProcess, EventRecorder, auth_headers, connect_socket, signup

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None or not (JS_DIR / "node_modules" / "socket.io-client").is_dir(),
    reason="needs node and tests/js/node_modules (scripts/provision.sh runs `npm ci` there)",
)


async def _next_line(stream: asyncio.StreamReader) -> dict[str, Any]:
    line = await asyncio.wait_for(stream.readline(), 20)
    assert line, "the node script ended early"
    return dict(json.loads(line))


async def test_js_client_sends_with_ack_and_receives_from_python(http: httpx.AsyncClient, api: ApiProcess) -> None:
    js_user, py_user = await signup(http), await signup(http)
    response = await http.post("/conversations", json={"user_id": py_user["user"]["id"]},
                               headers=auth_headers(js_user["access_token"]))
    assert response.status_code in (200, 201), response.text
    cid = response.json()["id"]
    py_events = EventRecorder()
    py_socket = await connect_socket(api.base_url, py_user["access_token"], recorder=py_events)
    env = {**os.environ, "CHATTY_URL": api.base_url, "CHATTY_TOKEN": js_user["access_token"],
           "CHATTY_CONVERSATION_ID": cid, "CHATTY_BODY": "hello from javascript",
           "CHATTY_BAD_TOKEN": js_user["access_token"] + "x"}
    node = await asyncio.create_subprocess_exec(NODE or "node", str(JS_DIR / "client.mjs"), cwd=JS_DIR, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert node.stdout is not None and node.stderr is not None
    try:
        refused = await _next_line(node.stdout)
        assert refused == {"step": "refused", "error": "unauthorized"}

        ready = await _next_line(node.stdout)
        assert ready["step"] == "ready", ready
        sent = ready["ack"]["data"]
        assert ready["ack"]["ok"] is True
        assert (sent["seq"], sent["body"], sent["sender_id"]) == (1, "hello from javascript",
                                                                   js_user["user"]["id"])
        assert await py_events.wait_for("message:new", lambda m: m["id"] == sent["id"]) == sent

        reply = await py_socket.call("message:send", {"conversation_id": cid, "client_msg_id": "py-1",
                                                      "body": "hello from python"}, timeout=10)
        assert reply["ok"] is True
        done = await _next_line(node.stdout)
        assert done["step"] == "done", done
        assert done["received"] == reply["data"]
        assert (done["received"]["seq"], done["received"]["sender_id"]) == (2, py_user["user"]["id"])
        assert done["transport"] == "websocket"  # upgraded from long-polling
        assert await asyncio.wait_for(node.wait(), 10) == 0
    finally:
        if node.returncode is None:
            node.kill()
            await node.wait()
        await py_socket.disconnect()
        if node.returncode:
            print((await node.stderr.read()).decode(errors="replace"))
