"""Solo-mode bookkeeping (src/socket/peers.py): when a lone process may skip publishing its emits."""

from __future__ import annotations

import asyncio

from src.socket import peers as peers_module
from src.socket.peers import Peers


def test_alone_only_when_a_subscribed_process_heard_only_itself() -> None:
    peers = Peers()
    peers.on_published(peers.epoch, [1])
    assert not peers.solo  # not subscribed: a count of 1 may be another process
    epoch = peers.on_subscribed()
    peers.on_published(epoch, [1, 2])
    assert not peers.solo
    peers.on_published(epoch, [1, 1])
    assert peers.solo


def test_a_hello_ends_solo_mode_and_older_publish_results_cannot_restore_it() -> None:
    peers = Peers()
    epoch = peers.on_subscribed()
    peers.on_published(epoch, [1])
    assert peers.solo
    peers.on_peer_hello()
    assert not peers.solo
    peers.on_published(epoch, [1])  # sent before the hello was read
    assert not peers.solo
    peers.on_published(peers.epoch, [1])  # sent after: the other process is gone again
    assert peers.solo


def test_a_reconnect_or_a_listener_count_ends_solo_mode() -> None:
    peers = Peers()
    peers.on_published(peers.on_subscribed(), [1])
    peers.on_unsubscribed()
    assert not peers.solo
    peers.on_published(peers.on_subscribed(), [1])
    peers.on_numsub(peers.epoch, 2)
    assert not peers.solo


async def test_sockets_wait_for_every_welcome_then_for_nothing() -> None:
    peers = Peers()
    peers.on_subscribed()
    waiting = asyncio.ensure_future(peers.wait_joined())
    peers.on_hello_counted(3)  # two other processes must answer
    peers.on_welcome()
    await asyncio.sleep(0)
    assert not waiting.done()
    peers.on_welcome()
    await asyncio.wait_for(waiting, 1)


async def test_sockets_are_taken_after_the_join_wait_without_answers(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(peers_module, "JOIN_WAIT", 0.05)
    peers = Peers()
    peers.on_subscribed()
    peers.on_hello_counted(2)
    await peers.wait_joined()
    await asyncio.wait_for(peers.wait_joined(), 0.01)  # never waits again
