"""Real WebRTC through Chatty's signaling: two aiortc peers on two API processes, offer, answer and
trickled ICE candidates only through `call:signal`; a relay-only pair through a real coturn with the
credentials of `/calls/ice-servers`; coturn refusing an expired credential."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
from aioice.stun import TransactionFailed
from aioice.turn import create_turn_endpoint
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp

from src.infra.local_services import HOST, TurnServer, free_port
from tests.e2e.harness import ApiProcess, User, connect_socket, new_user

pytestmark = pytest.mark.skipif(not shutil.which("turnserver"), reason="coturn (turnserver) is not installed")
TIMEOUT = 20


@pytest.fixture(scope="module")
def turn() -> Iterator[TurnServer]:
    """coturn on loopback with a TURN REST-API secret."""
    base = 50_000 + secrets.randbelow(100) * 100  # a relay port range unlikely to be taken
    server = TurnServer(Path(tempfile.mkdtemp(prefix="chatty-turn-")), free_port(), secrets.token_hex(16),
                        relay_ports=(base, base + 99)).start()
    yield server
    server.stop()
    shutil.rmtree(server.data_dir, ignore_errors=True)


def _turn_env(app_env: dict[str, str], turn: TurnServer, **extra: str) -> dict[str, str]:
    stun, turn_url = turn.urls
    return {**app_env, "STUN_URLS": stun, "TURN_URLS": turn_url, "TURN_SECRET": turn.secret, **extra}


@pytest.fixture(scope="module")
def turn_apis(app_env: dict[str, str], migrated_db: str, turn: TurnServer) -> Iterator[tuple[ApiProcess, ApiProcess]]:
    first = ApiProcess(_turn_env(app_env, turn)).start()
    second = ApiProcess(_turn_env(app_env, turn, RUN_OUTBOX_RELAY="false")).start()
    yield first, second
    first.stop()
    second.stop()


class Peer:
    """A WebRTC endpoint (aiortc) whose only signaling channel is a Chatty socket."""

    def __init__(self, user: User, config: RTCConfiguration) -> None:
        self.user = user
        self.pc = RTCPeerConnection(config)
        self.socket: socketio.AsyncClient | None = None
        self.inbox: dict[str, asyncio.Queue[Any]] = {e: asyncio.Queue() for e in
                                                     ("call:incoming", "call:accepted", "call:signal")}
        self.messages: asyncio.Queue[str] = asyncio.Queue()
        self.local_candidates: list[str] = []

    async def connect(self, api: ApiProcess) -> Peer:
        self.socket = await connect_socket(api.base_url, self.user.token)
        for event, queue in self.inbox.items():
            self.socket.on(event, queue.put_nowait)  # queued in arrival order, handled in order
        return self

    async def ok(self, event: str, data: Any) -> Any:
        assert self.socket is not None
        ack = await self.socket.call(event, data, timeout=10)
        assert ack["ok"] is True, ack
        return ack["data"]

    async def next(self, event: str) -> Any:
        return await asyncio.wait_for(self.inbox[event].get(), TIMEOUT)

    async def send_description(self, call_id: str, to: User) -> None:
        """Our description without its candidates, then each candidate as its own `ice` signal."""
        desc = self.pc.localDescription
        lines = desc.sdp.splitlines()
        self.local_candidates = [ln[2:] for ln in lines if ln.startswith("a=candidate:")]
        bare = "\r\n".join(ln for ln in lines if not ln.startswith(("a=candidate:", "a=end-of-candidates"))) + "\r\n"
        await self.ok("call:signal", {"call_id": call_id, "to_user_id": to.id, "kind": desc.type,
                                      "payload": {"type": desc.type, "sdp": bare}})
        for candidate in self.local_candidates:
            await self.ok("call:signal", {"call_id": call_id, "to_user_id": to.id, "kind": "ice",
                                          "payload": {"candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0}})
        await self.ok("call:signal", {"call_id": call_id, "to_user_id": to.id, "kind": "ice",
                                      "payload": {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}})

    async def take_signals(self) -> None:
        """Apply the relayed description and candidates in order, up to the end of candidates."""
        while True:
            signal = await self.next("call:signal")
            payload = signal["payload"]
            if signal["kind"] in ("offer", "answer"):
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=payload["sdp"], type=payload["type"]))
            elif payload["candidate"]:
                candidate = candidate_from_sdp(payload["candidate"].removeprefix("candidate:"))
                candidate.sdpMid, candidate.sdpMLineIndex = payload["sdpMid"], payload["sdpMLineIndex"]
                await self.pc.addIceCandidate(candidate)
            else:
                await self.pc.addIceCandidate(None)
                return

    async def close(self) -> None:
        await self.pc.close()
        if self.socket is not None and self.socket.connected:
            await self.socket.disconnect()


async def _connected(pc: RTCPeerConnection) -> None:
    deadline = time.monotonic() + TIMEOUT
    while pc.connectionState != "connected":
        assert pc.connectionState != "failed", "the peer connection failed"
        assert time.monotonic() < deadline, f"not connected: {pc.connectionState}"
        await asyncio.sleep(0.05)


async def _call_and_chat(caller: Peer, callee: Peer) -> None:
    """Invite, accept, negotiate only through Chatty, then a data-channel message each way."""
    call_id = str((await caller.ok("call:invite", {"user_id": callee.user.id, "media": "audio"}))["call_id"])
    assert (await callee.next("call:incoming"))["id"] == call_id
    await callee.ok("call:accept", {"call_id": call_id})
    assert (await caller.next("call:accepted"))["user_id"] == callee.user.id

    channel = caller.pc.createDataChannel("chat")
    opened = asyncio.Event()
    channel.on("open", opened.set)
    channel.on("message", caller.messages.put_nowait)

    @callee.pc.on("datachannel")
    def on_channel(remote: Any) -> None:
        remote.on("message", lambda text: (callee.messages.put_nowait(text), remote.send(f"echo: {text}")))

    await caller.pc.setLocalDescription(await caller.pc.createOffer())  # gathers every candidate
    await caller.send_description(call_id, callee.user)
    await callee.take_signals()
    await callee.pc.setLocalDescription(await callee.pc.createAnswer())
    await callee.send_description(call_id, caller.user)
    await caller.take_signals()
    await asyncio.gather(_connected(caller.pc), _connected(callee.pc))
    await asyncio.wait_for(opened.wait(), TIMEOUT)
    channel.send("hello over WebRTC")
    assert await asyncio.wait_for(callee.messages.get(), TIMEOUT) == "hello over WebRTC"
    assert await asyncio.wait_for(caller.messages.get(), TIMEOUT) == "echo: hello over WebRTC"
    await caller.ok("call:end", {"call_id": call_id})


@pytest.fixture
async def pair(http: httpx.AsyncClient) -> AsyncIterator[Callable[..., Any]]:
    peers: list[Peer] = []

    async def make(api: ApiProcess, config: RTCConfiguration) -> Peer:
        peer = Peer(await new_user(http), config)
        peers.append(peer)
        return await peer.connect(api)

    yield make
    for peer in peers:
        await peer.close()


async def test_two_peers_connect_through_chatty_signaling(
        turn_apis: tuple[ApiProcess, ApiProcess], pair: Callable[..., Any]) -> None:
    one, two = turn_apis
    caller, callee = await pair(one, RTCConfiguration(iceServers=[])), await pair(two, RTCConfiguration(iceServers=[]))
    await _call_and_chat(caller, callee)
    assert any(" typ host" in c for c in caller.local_candidates)


async def _ice_config(http: httpx.AsyncClient, api: ApiProcess, user: User, *, relay_only: bool) -> RTCConfiguration:
    response = await http.get(f"{api.base_url}/api/v1/calls/ice-servers", headers=user.headers)
    assert response.status_code == 200, response.text
    servers = [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
               for s in response.json()["ice_servers"]]
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy.RELAY if relay_only
                            else RTCIceTransportPolicy.ALL)


async def test_relay_only_peers_connect_through_coturn_with_chatty_credentials(
        http: httpx.AsyncClient, turn_apis: tuple[ApiProcess, ApiProcess], turn: TurnServer,
        pair: Callable[..., Any]) -> None:
    one, two = turn_apis
    caller, callee = await pair(one, RTCConfiguration()), await pair(two, RTCConfiguration())
    for peer, api in ((caller, one), (callee, two)):
        peer.pc = RTCPeerConnection(await _ice_config(http, api, peer.user, relay_only=True))
    await _call_and_chat(caller, callee)
    for peer in (caller, callee):  # only relayed candidates were offered: the media went through coturn
        assert peer.local_candidates and all(" typ relay" in c for c in peer.local_candidates)


async def test_coturn_refuses_an_expired_credential(
        http: httpx.AsyncClient, app_env: dict[str, str], migrated_db: str, turn: TurnServer,
        api_factory: Callable[..., ApiProcess]) -> None:
    short = api_factory(**_turn_env({}, turn, TURN_CREDENTIAL_TTL="1"))
    user = await new_user(http)
    response = await http.get(f"{short.base_url}/api/v1/calls/ice-servers", headers=user.headers)
    body = response.json()
    turn_entry = next(s for s in body["ice_servers"] if s.get("username"))
    assert turn_entry["username"].endswith(f":{user.id}")
    server = (HOST, turn.port)

    async def allocate(username: str, password: str) -> None:
        transport, _ = await create_turn_endpoint(asyncio.DatagramProtocol, server, username, password)
        transport.close()

    await allocate(turn_entry["username"], turn_entry["credential"])  # valid for one second: accepted
    await asyncio.sleep(max(0.0, int(turn_entry["username"].split(":")[0]) + 1.1 - time.time()))
    with pytest.raises(TransactionFailed):
        await allocate(turn_entry["username"], turn_entry["credential"])
    with pytest.raises(TransactionFailed):  # and a forged one
        await allocate(f"{int(time.time()) + 600}:{user.id}", "not-the-hmac")
