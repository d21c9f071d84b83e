"""The per-socket moving window of client events."""

from __future__ import annotations

import pytest

from src.socket import event_window
from src.socket.event_window import EventWindow


def test_a_full_window_refuses_until_its_oldest_hit_ages_out(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(event_window.time, "monotonic", lambda: now[0])
    window = EventWindow("3/second")
    assert [window.hit("a") for _ in range(4)] == [True, True, True, False]
    assert window.hit("b")  # counted per key
    assert window.retry_after("a") == pytest.approx(1.0)
    now[0] += 0.5
    assert not window.hit("a") and window.retry_after("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert window.hit("a") and window.retry_after("a") == 0.0


def test_a_forgotten_key_starts_afresh() -> None:
    window = EventWindow("1/minute")
    assert window.hit("sid") and not window.hit("sid")
    window.forget("sid")
    assert window.hit("sid")
