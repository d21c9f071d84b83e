"""The feed's cached list of pull authors: an expired copy is read again once, not once per page."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from src.modules.posts import feed
from src.modules.posts.feed import BigAuthors


class CountingBigAuthors(BigAuthors):
    """BigAuthors over a table held in memory, counting its reads."""

    def __init__(self, table: set[uuid.UUID]) -> None:
        super().__init__(ctx=Any)  # type: ignore[arg-type]
        self.table, self.reads = table, 0

    async def read_ids(self) -> frozenset[uuid.UUID]:
        self.reads += 1
        await asyncio.sleep(0.01)
        return frozenset(self.table)


async def test_pages_in_flight_read_an_expired_copy_once(monkeypatch: Any) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    monkeypatch.setattr(feed, "BIG_AUTHORS_TTL", 0.0)  # every copy expires at once
    big = CountingBigAuthors({first})
    assert await big.get() == frozenset({first})
    assert await big.get() == frozenset({first}) and big.reads == 2
    big.table.add(second)
    pages = await asyncio.gather(*(big.get() for _ in range(32)))
    assert big.reads == 3  # one page read it again; the others kept the expiring copy meanwhile
    assert frozenset({first, second}) in pages


async def test_after_forget_no_page_gets_the_old_copy() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    big = CountingBigAuthors({first})
    assert await big.get() == frozenset({first})
    big.table.add(second)
    big.forget()  # this process just marked `second`
    pages = await asyncio.gather(*(big.get() for _ in range(4)))
    assert pages == [frozenset({first, second})] * 4
