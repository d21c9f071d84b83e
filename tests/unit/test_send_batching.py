"""Batched Redis writes, the socket.io JSON module and the early refusal's packet parsing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from src.infra.redis_batch import PipelineBatcher
from src.socket import fast_json
from src.socket.early_refusal import ack_id


class FakePipeline:
    def __init__(self, log: list[list[tuple[str, Any]]], fail: list[bool]) -> None:
        self.commands: list[tuple[str, Any]] = []
        self._log, self._fail = log, fail

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *_: Any) -> None:
        return None

    def publish(self, channel: str, payload: bytes) -> None:
        self.commands.append((channel, payload))

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        await asyncio.sleep(0.01)
        if self._fail and self._fail.pop(0):
            raise ConnectionError("down")
        self._log.append(self.commands)
        return [1] * len(self.commands)


class FakeRedis:
    def __init__(self, fail: list[bool] | None = None) -> None:
        self.batches: list[list[tuple[str, Any]]] = []
        self.fail = fail or []

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self.batches, self.fail)


async def test_concurrent_callers_share_pipelines_in_order() -> None:
    redis = FakeRedis()
    batcher = PipelineBatcher(lambda: redis, "test")  # type: ignore[arg-type, return-value]
    await asyncio.gather(*(batcher.run(lambda pipe, i=i: pipe.publish("c", i)) for i in range(10)))
    assert len(redis.batches) == 1
    await asyncio.gather(batcher.run(lambda pipe: pipe.publish("c", "a")),
                         batcher.run(lambda pipe: pipe.publish("c", "b")))
    assert [p for batch in redis.batches for _, p in batch] == [*range(10), "a", "b"]


async def test_a_failed_batch_is_retried_once_then_dropped_without_raising() -> None:
    redis = FakeRedis(fail=[True])
    batcher = PipelineBatcher(lambda: redis, "test")  # type: ignore[arg-type, return-value]
    await batcher.run(lambda pipe: pipe.publish("c", 1))
    assert redis.batches == [[("c", 1)]]
    redis.fail = [True, True]
    await batcher.run(lambda pipe: pipe.publish("c", 2))  # given up: no error for the caller
    assert redis.batches == [[("c", 1)]]


def test_fast_json_reads_and_writes_what_the_standard_library_does() -> None:
    for value in ({"a": [1, 2.5, None, True], "é": "ü"}, [], "x", 10**30):
        assert json.loads(fast_json.dumps(value)) == value
        assert fast_json.loads(json.dumps(value)) == value
    lone = fast_json.loads('["message:send",{"body":"\\ud800"}]')  # as the standard library reads it
    assert lone == json.loads('["message:send",{"body":"\\ud800"}]')
    assert json.loads(fast_json.dumps(["\ud800"])) == ["\ud800"]


def test_ack_id_of_an_encoded_event() -> None:
    assert ack_id('2123["message:send",{}]') == 123
    assert ack_id('2["typing:start",{}]') is None
    assert ack_id("2") is None
