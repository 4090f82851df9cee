"""Reading back what a run left in the Prefect API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from support._waiting import wait_until_async


async def settled_task_runs(
    flow_run_id: Any, settled: Callable[[list[Any]], bool], *, timeout: float = 30.0
) -> list[Any]:
    """The flow run's task runs from the Prefect API, once ``settled(runs)`` holds.

    The server records task runs from events, after the run has returned (a
    custom run name, for one, arrives as a rename): they are read until they
    have settled; after ``timeout`` seconds the wait fails, showing the runs read last.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as api:

        async def read() -> list[Any] | None:
            runs = list(
                await api.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
                )
            )
            return runs if settled(runs) else None

        runs: list[Any] = await wait_until_async(read, "the task runs to settle", timeout)
        return runs
