"""The call state machine and coturn's REST-API credentials, without I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from src.common.errors import Conflict, Forbidden, NotFound
from src.infra.config import Settings
from src.modules.calls import state
from src.modules.calls.ice import ice_servers
from src.modules.calls.state import CallState, Participant

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
A, B, C = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def _call(*callees: uuid.UUID) -> CallState:
    return CallState(id=uuid.uuid4(), kind="group" if len(callees) > 1 else "direct", media="audio",
                     conversation_id=None, caller_id=A, status="ringing", created_at=T0,
                     ring_deadline=T0 + timedelta(seconds=45),
                     participants=[Participant(user_id=A, state="joined", sid="a1", joined_at=T0),
                                   *(Participant(user_id=u, state="ringing") for u in callees)])


def test_the_joined_device_reconnecting_takes_its_place_before_its_drop_is_noticed() -> None:
    call = _call(B)
    state.accept(call, B, "b1", "n1", T0, session="phone")
    with pytest.raises(Conflict, match="another device"):  # another sign-in of B: another device
        state.accept(call, B, "b2", "n2", T0, session="laptop")
    assert state.accept(call, B, "b3", "n2", T0, session="phone") is True  # the phone, reconnected
    assert call.member(B).sid == "b3" and call.member(B).node == "n2"
    assert state.disconnected(call, B, "b1", T0) is False  # the old socket's late drop changes nothing


def test_first_accept_wins_and_the_second_device_is_refused() -> None:
    call = _call(B)
    assert state.accept(call, B, "b1", "n1", T0 + timedelta(seconds=3)) is False
    assert call.status == "accepted" and call.member(B).sid == "b1"
    with pytest.raises(Conflict, match="another device"):
        state.accept(call, B, "b2", "n1", T0)
    with pytest.raises(NotFound):
        state.accept(call, C, "c1", "n1", T0)


def test_hang_up_completes_and_measures_the_call() -> None:
    call = _call(B)
    state.accept(call, B, "b1", "n1", T0 + timedelta(seconds=5))
    state.hang_up(call, B, T0 + timedelta(seconds=65))
    assert (call.status, call.end_reason, call.duration_s) == ("ended", "completed", 60)
    assert [p.state for p in call.participants] == ["left", "left"]
    with pytest.raises(Conflict):
        state.hang_up(call, A, T0)


def test_reject_cancel_and_ring_timeout() -> None:
    rejected = _call(B)
    state.reject(rejected, B, T0)
    assert rejected.end_reason == "rejected"

    cancelled = _call(B)
    with pytest.raises(Forbidden):
        state.cancel(cancelled, B, T0)
    state.cancel(cancelled, A, T0)
    assert cancelled.end_reason == "cancelled" and cancelled.member(B).state == "missed"

    missed = _call(B)
    assert state.ring_timeout(missed, T0 + timedelta(seconds=44)) is False
    assert state.ring_timeout(missed, T0 + timedelta(seconds=45)) is True
    assert missed.end_reason == "missed"


def test_group_call_goes_on_while_two_remain() -> None:
    call = _call(B, C)
    state.accept(call, B, "b1", "n1", T0)
    assert state.ring_timeout(call, T0 + timedelta(seconds=46)) is True  # C missed it; A and B talk on
    assert call.status == "accepted" and call.member(C).state == "missed"
    state.hang_up(call, A, T0 + timedelta(seconds=50))
    assert call.end_reason == "completed"


def test_reconnect_grace_resume_and_failure() -> None:
    call = _call(B)
    state.accept(call, B, "b1", "n1", T0)
    assert state.disconnected(call, B, "other-socket", T0) is False
    dropped = T0 + timedelta(seconds=10)
    assert state.disconnected(call, B, "b1", dropped) is True
    assert state.accept(call, B, "b2", "n1", T0 + timedelta(seconds=12)) is True  # resumed elsewhere
    assert state.grace_expired(call, B, dropped, T0 + timedelta(seconds=30)) is False
    again = T0 + timedelta(seconds=40)
    state.disconnected(call, B, "b2", again)
    assert state.grace_expired(call, B, again, T0 + timedelta(seconds=60)) is True
    assert (call.end_reason, call.member(B).state) == ("failed", "failed")


def test_a_socket_whose_process_died_may_be_replaced() -> None:
    call = _call(B)
    state.accept(call, B, "b1", "n1", T0)
    with pytest.raises(Conflict):
        state.accept(call, B, "b2", "n2", T0, lost_sid="some-other-socket")
    assert state.accept(call, B, "b2", "n2", T0, lost_sid="b1") is True
    assert (call.member(B).sid, call.member(B).node) == ("b2", "n2")


def test_turn_credentials_follow_coturns_rest_scheme() -> None:
    settings = Settings(database_url="postgresql://x@h/d", redis_url="redis://h/0", jwt_secret="s" * 32,
                        stun_urls="stun:a:3478", turn_urls="turn:a:3478?transport=udp, turns:a:5349",
                        turn_secret="top-secret", turn_credential_ttl=600, _env_file=None)  # type: ignore[call-arg]
    view = ice_servers(settings, A, T0)
    stun, turn = view.ice_servers
    assert stun.urls == ["stun:a:3478"] and stun.username is None
    assert turn.urls == ["turn:a:3478?transport=udp", "turns:a:5349"]
    expiry = int(T0.timestamp()) + 600
    assert turn.username == f"{expiry}:{A}"
    expected = base64.b64encode(hmac.new(b"top-secret", turn.username.encode(), hashlib.sha1).digest()).decode()
    assert turn.credential == expected and view.expires_at == T0 + timedelta(seconds=600)
    with pytest.raises(ValueError):
        Settings(database_url="postgresql://x@h/d", redis_url="redis://h/0", jwt_secret="s" * 32,
                 turn_credential_ttl=7200, _env_file=None)  # type: ignore[call-arg]
