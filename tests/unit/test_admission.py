"""Admission control decides from in-flight work and loop lag (the clock is moved by hand)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import exc as sa_exc

from src.common.errors import Overloaded
from src.infra.admission import RESERVATION_TTL, STALE_QUORUM, Admission

Make = Callable[..., Admission]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make(clock: Clock) -> Callable[..., Admission]:
    def build(max_in_flight: int = 8) -> Admission:
        return Admission(max_in_flight=max_in_flight, max_age=0.25, max_loop_lag=0.1, clock=clock)
    return build


def test_refuses_past_the_in_flight_limit_and_admits_again_when_work_ends(clock: Clock, make: Make) -> None:
    gate = make(max_in_flight=2)
    first, second = gate.enter("socket"), gate.enter("socket")
    assert first is not None and second is not None
    assert gate.enter("socket") is None and gate.refusal() == "in_flight"
    gate.leave(first)
    assert gate.enter("http") is not None


def test_one_slow_piece_of_work_is_no_overload_but_a_quorum_of_old_ones_is(clock: Clock, make: Make) -> None:
    gate = make()
    tickets = [gate.enter("socket") for _ in range(STALE_QUORUM)]
    clock.now += 1.0
    assert gate.refusal() == "queueing"
    for ticket in tickets[1:]:
        assert ticket is not None
        gate.leave(ticket)
    assert gate.refusal() is None  # only one old piece (an upload, a cascade) left


def test_young_work_behind_old_work_stops_the_scan(clock: Clock, make: Make) -> None:
    gate = make()
    gate.enter("socket")
    clock.now += 1.0
    for _ in range(STALE_QUORUM):
        gate.enter("socket")
    assert gate.refusal() is None


def test_an_overdue_loop_lag_sampler_refuses(clock: Clock, make: Make) -> None:
    gate = make()
    gate._due = clock.now + 0.05  # the sampler expects to wake then
    assert gate.refusal() is None
    clock.now += 0.5  # and has not: the loop is 450 ms late
    assert gate.refusal() == "loop_lag"
    assert gate.loop_lag() == pytest.approx(0.45)


async def test_guard_answers_refusals_and_counts_work(clock: Clock, make: Make) -> None:
    gate = make(max_in_flight=1)
    seen: list[int] = []

    async def on_event(sid: str) -> str:
        seen.append(gate.in_flight)
        return f"ok {sid}"

    guarded = gate.guard(on_event, lambda retry_after: f"refused, retry in {retry_after}")
    assert await guarded("a") == "ok a" and seen == [1] and gate.in_flight == 0
    held = gate.enter("http")
    assert await guarded("b") == "refused, retry in 1"
    assert held is not None


async def test_a_pool_timeout_is_overloaded(clock: Clock, make: Make) -> None:
    async def handler(*_: object) -> None:
        raise sa_exc.TimeoutError("QueuePool limit reached")

    with pytest.raises(Overloaded) as raised:
        await Admission.overload_as_error(handler)(None, "sid", {})  # type: ignore[arg-type]
    assert raised.value.code == "overloaded" and raised.value.status == 503


def test_an_event_admitted_at_frame_receipt_is_not_decided_again_by_its_handler(clock: Clock, make: Make) -> None:
    gate = make(max_in_flight=2)
    assert gate.reserve() is None and gate.reserve() is None
    assert gate.in_flight == 2 and gate.reserved == 2
    assert gate.reserve() == "in_flight"  # the reservations count as work in flight
    assert gate.enter("http") is None  # an HTTP request never takes a socket event's reservation
    first, second = gate.enter("socket"), gate.enter("socket")  # the handlers claim them though full
    assert first is not None and second is not None and gate.reserved == 0 and gate.in_flight == 2
    assert gate.enter("socket") is None  # nothing reserved left: decided as before
    gate.leave(first)
    assert gate.reserve() is None


def test_a_reservation_no_handler_claims_lapses(clock: Clock, make: Make) -> None:
    gate = make(max_in_flight=1)
    assert gate.reserve() is None
    clock.now += RESERVATION_TTL / 2
    assert gate.refusal() == "in_flight"
    clock.now += RESERVATION_TTL
    assert gate.refusal() is None and gate.in_flight == 0 and gate.reserved == 0


async def test_the_guard_claims_a_reserved_ticket(clock: Clock, make: Make) -> None:
    gate = make(max_in_flight=1)

    async def on_event(sid: str) -> str:
        return f"ok {sid}"

    guarded = gate.guard(on_event, lambda retry_after: "refused")
    assert gate.reserve() is None
    assert await guarded("a") == "ok a" and gate.in_flight == 0 and gate.reserved == 0
