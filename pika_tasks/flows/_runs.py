"""What Prefect knows about other flow runs: whether one has ended.

A row's claim names the flow run holding it; when Prefect reports that run
crashed, cancelled or finished, its claims are stale and another run may take
its rows over (see :mod:`pika_tasks.claims`).
"""

from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

__all__ = ["flow_run_is_over"]


async def flow_run_is_over(flow_run_id: str) -> bool:
    """True when Prefect reports the flow run in a final state.

    A run this server does not know (another server's, or an in-process run's
    throwaway server) and an API that does not answer both give False: only
    the claim's lease and process then say whether its holder is gone.
    """
    try:
        async with get_client() as client:
            run = await client.read_flow_run(UUID(flow_run_id))
    except (ObjectNotFound, ValueError):
        return False
    except Exception:  # the API's trouble is no evidence that the run is over
        return False
    return run.state is not None and run.state.is_final()
