"""The slots' fallbacks without a Prefect API: the local bound alone, and a global limit that
does not answer (one warning, then one row at a time tries it again after a pause)."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from pika_tasks.concurrency import FalSlots
from pika_tasks.concurrency import _describe as describe
from pika_tasks.concurrency import _Reach as Reach
from pika_tasks.concurrency import _retry_after as retry_after

LOGGER = logging.getLogger("tests.concurrency")


async def test_without_a_global_limit_the_local_bound_holds() -> None:
    slots = FalSlots(limit_name=None, local_limit=2)
    in_flight = most = 0

    async def row() -> None:
        nonlocal in_flight, most
        async with slots.slot():
            in_flight += 1
            most = max(most, in_flight)
            await asyncio.sleep(0)  # let the other rows try to enter
            await asyncio.sleep(0)
            in_flight -= 1

    await asyncio.gather(*(row() for _ in range(6)))
    assert (most, in_flight) == (2, 0)
    await slots.pace_submit()  # no rate limit: returns at once


def test_bounds_are_clamped_to_what_works() -> None:
    slots = FalSlots(limit_name="fal-pika", local_limit=0, lease_seconds=5)
    assert (slots.local_limit, slots.lease_seconds) == (1, 60.0)  # the server's minimum lease


def test_an_unreachable_limit_warns_once_then_is_retried_by_one_row_after_a_pause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reach = Reach("global concurrency limit", "limit %r out of reach (%s)")
    assert reach.usable(retry_seconds=30)  # answering: every row asks it

    with caplog.at_level(logging.INFO, logger=LOGGER.name):
        reach.down(LOGGER, "fal-pika", "503 on /api/v2/concurrency_limits/increment")
        assert not reach.usable(retry_seconds=30), "asked again before the pause"
        assert reach.usable(retry_seconds=0), "one row tries it after the pause"
        assert not reach.usable(retry_seconds=0), "only one row at a time tries it"
        reach.down(LOGGER, "fal-pika", "ConnectError")
        reach.up(LOGGER, "fal-pika")
    levels = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert levels == [
        ("WARNING", "limit 'fal-pika' out of reach (503 on /api/v2/concurrency_limits/increment)"),
        ("INFO", "the global concurrency limit 'fal-pika' is still out of reach: ConnectError"),
        ("INFO", "the global concurrency limit 'fal-pika' answers again"),
    ]
    assert reach.usable(retry_seconds=30)  # answering again: every row asks it


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, 1.0), ("2.5", 2.5), ("0", 0.05), ("3600", 30.0), ("soon", 1.0)],
)
def test_a_full_limit_is_asked_again_when_the_server_says_within_bounds(
    header: str | None, seconds: float
) -> None:
    headers = {} if header is None else {"Retry-After": header}
    assert retry_after(httpx.Response(423, headers=headers)) == seconds


def test_failures_are_described_without_their_bodies() -> None:
    request = httpx.Request("POST", "http://prefect.test/api/v2/concurrency_limits/increment")
    response = httpx.Response(503, request=request, text="a long page")
    error = httpx.HTTPStatusError("server error", request=request, response=response)
    assert describe(error) == "503 on /api/v2/concurrency_limits/increment"
    assert describe(httpx.ConnectError("refused")) == "ConnectError: refused"
    assert describe(TimeoutError()) == "TimeoutError"
