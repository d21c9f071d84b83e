"""Where a refusal's time goes, seen from the server (`loopmon.py --frame-timing`).

The load generators put `bench t=<send time>` in every message body. Here the API process notes,
for each such frame, how long after that send time its frame was read (uvicorn's protocol handing
it on) and, for the frames refused at receipt (ws_protocol's refusal), when the `overloaded` ack
was written. Client and server share the machine's clock. Compared with the refusal latency the
generator prints, it splits the delay into before the server and after it.
"""

from __future__ import annotations

import re
import time
from typing import Any

BODY_TIME = re.compile(rb"bench t=([0-9.]+)")


class FrameTiming:
    """Read and refusal delays after the client's send, in seconds."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.read: list[float] = []
        self.refused: list[float] = []

    def install(self) -> None:
        """Wrap the websocket protocol's hand-over of received messages and the refusal it asks."""
        from src.socket import ws_protocol

        timing = self
        hand_over = ws_protocol.LightWebSocketProtocol.send_receive_event_to_app

        def timed_hand_over(protocol: Any) -> None:
            if len(protocol.frames) == 1 and (sent := _sent_at(protocol.frames[0])) is not None:
                timing.read.append(time.time() - sent)
            hand_over(protocol)

        ws_protocol.LightWebSocketProtocol.send_receive_event_to_app = timed_hand_over  # type: ignore[method-assign]
        set_refusal = ws_protocol.set_refusal

        def timed_set_refusal(refusal: ws_protocol.Refusal | None) -> None:
            if refusal is None:
                set_refusal(None)
                return
            answer_of = refusal

            def timed(data: bytes | bytearray) -> bytes | None:
                answer = answer_of(data)
                if answer and (sent := _sent_at(data)) is not None:
                    timing.refused.append(time.time() - sent)
                return answer

            set_refusal(timed)

        ws_protocol.set_refusal = timed_set_refusal  # type: ignore[assignment]

    def report(self) -> str:
        return (f"client send → frame read ms: {_quantiles(self.read)}\n"
                f"client send → refusal written ms: {_quantiles(self.refused)}\n")


def _sent_at(data: bytes | bytearray) -> float | None:
    found = BODY_TIME.search(bytes(data[:400]))
    return float(found.group(1)) if found else None


def _quantiles(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    at = lambda p: ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000  # noqa: E731
    return f"{len(ordered)} frames, p50 {at(.5):.1f} p99 {at(.99):.1f} max {ordered[-1] * 1000:.1f}"
