"""Whether any other API process listens on the Socket.IO channel: when none does, emits are not published.

python-socketio delivers an emit to this process's sockets, then publishes it so that every other
API process delivers it to theirs; this process's own copy comes back on the channel and is
skipped. With one API process (the common deployment) the publish and the copy coming back are
pure cost (~10 % of the API's CPU per 1:1 message, bench/messaging.py). PUBLISH answers how many
subscribers received the message: when an emit reached only this process's own subscription, no
other API process exists and this process goes *solo* (emits are delivered locally only).

The hand-over when a second process starts (nothing may be lost on its sockets):
1. Every API process, each time its subscription is confirmed, publishes `hello` and learns from
   PUBLISH how many processes listen (N, itself included).
2. A process receiving another's `hello` leaves solo mode *before* answering `welcome`; a publish
   result read later that was sent before the `hello` arrived (an older epoch) cannot put it back
   in solo mode.
3. The new process lets no socket connect (`wait_joined`, in the connect handler) until it has N-1
   `welcome`s or `JOIN_WAIT` passed: by then every other process publishes its emits, so the new
   process's sockets miss none.
A solo process also asks Redis how many listen (`PUBSUB NUMSUB`) every `RECHECK_SECONDS` while it
skips publishes, in case a `hello` was missed (e.g. during its own pub/sub reconnect, after which it
also leaves solo mode until a publish says otherwise). A write-only manager (workers) never
subscribes, so it never goes solo.
"""

from __future__ import annotations

import asyncio
import time

import structlog

log = structlog.get_logger("chatty.socket")
JOIN_WAIT = 2.0  # seconds a new process waits for the others' `welcome` before taking sockets anyway
RECHECK_SECONDS = 1.0  # a solo process asks Redis how many listen at most this often


class Peers:
    """Solo-mode state of one listening manager (see the module docstring)."""

    def __init__(self) -> None:
        self.solo = False
        self.subscribed = False
        self.epoch = 0  # bumped by every `hello` of another process and every (re)subscription
        self._expected: int | None = None  # welcomes awaited (N-1), once our `hello` was counted
        self._welcomes = 0
        self._joined = asyncio.Event()
        self._checked_at = 0.0

    def on_subscribed(self) -> int:
        """Our subscription is confirmed (first time or after a reconnect): not solo until proven; the
        epoch the coming `hello` belongs to."""
        self.subscribed = True
        self.solo = False
        self.epoch += 1
        self._welcomes = 0
        self._expected = None
        return self.epoch

    def on_unsubscribed(self) -> None:
        """The pub/sub connection failed: publish everything until subscribed and proven alone again."""
        self.subscribed = False
        self.solo = False

    def on_hello_counted(self, listeners: int) -> None:
        """Our `hello` reached `listeners` subscribers (us included)."""
        self._expected = max(0, listeners - 1)
        self._check_joined()

    def on_welcome(self) -> None:
        """Another process answered our `hello`: it publishes its emits from now on."""
        self._welcomes += 1
        self._check_joined()

    def on_peer_hello(self) -> None:
        """Another process started listening: publish every emit from now on."""
        if self.solo:
            log.info("socket.peers_joined")
        self.solo = False
        self.epoch += 1

    def on_published(self, epoch: int, counts: list[int]) -> None:
        """Publishes built at `epoch` reached these subscriber counts: alone if only we heard them."""
        if self.subscribed and epoch == self.epoch and counts and all(c == 1 for c in counts):
            self.solo = True

    def due_recheck(self) -> bool:
        """Whether a solo process should ask Redis again how many listen (and note that it does)."""
        now = time.monotonic()
        if now - self._checked_at < RECHECK_SECONDS:
            return False
        self._checked_at = now
        return True

    def on_numsub(self, epoch: int, listeners: int) -> None:
        """`PUBSUB NUMSUB` (asked at `epoch`) says `listeners` subscribe: more than us ends solo mode."""
        if listeners != 1 and epoch == self.epoch:
            self.on_peer_hello()

    def _check_joined(self) -> None:
        if self._expected is not None and self._welcomes >= self._expected:
            self._joined.set()

    async def wait_joined(self) -> None:
        """Return once every other process answered our `hello` (or after JOIN_WAIT, then never wait again)."""
        if self._joined.is_set():
            return
        try:
            await asyncio.wait_for(self._joined.wait(), JOIN_WAIT)
        except TimeoutError:
            log.warning("socket.peers_join_timeout", expected=self._expected, welcomes=self._welcomes)
            self._joined.set()
