"""A flow in a process of its own: ``python flow_child.py batch|scale-out PARAMETERS_JSON``.

Prints the run's state and counts as one JSON line.  A test gives the process
its own Prefect API URL (a proxy that injects faults, or a server it restarts),
which the flow's process-wide Prefect clients and workers then use from the
start.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


def main() -> None:
    from pika_tasks.flows.image_to_video import image_to_video_batch
    from pika_tasks.flows.scale_out import image_to_video_scale_out
    from pika_tasks.pipeline import BatchResult

    flows: dict[str, Any] = {"batch": image_to_video_batch, "scale-out": image_to_video_scale_out}
    chosen, parameters = flows[sys.argv[1]], json.loads(sys.argv[2])
    state = asyncio.run(chosen(**parameters, return_state=True))
    result = state.result(raise_on_failure=False)
    counts = result.model_dump() if isinstance(result, BatchResult) else None
    print(json.dumps({"state": state.type.value, "message": state.message, "result": counts}))


if __name__ == "__main__":
    main()
