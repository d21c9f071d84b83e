"""Client events refused as their websocket frame is parsed: the `overloaded` ack frame, or nothing."""

from __future__ import annotations

import json

from src.infra.admission import Admission
from src.socket.direct_send import text_frame
from src.socket.early_refusal import refuse_frame, refuse_upgrade

BODY = json.dumps([{"ok": False, "error": {"code": "overloaded", "retry_after": 1}}], separators=(",", ":"))


def _admission(full: bool) -> Admission:
    admission = Admission(max_in_flight=1, max_age=0.1, max_loop_lag=0.1, clock=lambda: 1000.0)
    if full:
        admission.enter("socket")
    return admission


def test_an_event_asking_an_ack_is_answered_overloaded_while_admission_refuses() -> None:
    frame = refuse_frame(_admission(full=True), BODY, b'4217["message:send",{"body":"hi"}]')
    assert frame == text_frame(f"4317{BODY}".encode())


def test_an_event_without_ack_is_dropped_and_other_messages_go_on() -> None:
    full = _admission(full=True)
    assert refuse_frame(full, BODY, b'42["typing",{}]') == b""
    for other in (b"2", b"3", b'40{"token":"x"}', b'42/chat,5["x"]', b'431[{"ok":true}]'):
        assert refuse_frame(full, BODY, other) is None, other


def test_nothing_is_refused_while_admission_takes_work() -> None:
    assert refuse_frame(_admission(full=False), BODY, b'4217["message:send",{}]') is None


def test_an_event_taken_at_frame_receipt_reserves_its_ticket() -> None:
    admission = Admission(max_in_flight=1, max_age=0.1, max_loop_lag=0.1, clock=lambda: 1000.0)
    assert refuse_frame(admission, BODY, b'421["message:send",{}]') is None
    assert admission.reserved == 1
    assert refuse_frame(admission, BODY, b'422["message:send",{}]') == text_frame(f"432{BODY}".encode())
    assert admission.enter("socket") is not None and admission.reserved == 0


def test_a_new_websocket_is_refused_while_admitted_work_is_at_its_bound_but_not_for_a_late_loop_alone() -> None:
    assert refuse_upgrade(_admission(full=True)) == 1
    assert refuse_upgrade(_admission(full=False)) is None
    clock = [1000.0]
    late = Admission(max_in_flight=8, max_age=0.1, max_loop_lag=0.1, clock=lambda: clock[0])
    late._due = 999.0  # the lag sampler is a second overdue: a burst of connects does that by itself
    assert late.refusal() == "loop_lag" and refuse_upgrade(late) is None
