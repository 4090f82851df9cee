"""Prefect events for finished rows, so automations can react to single videos.

The batch flow emits one event per row it finished in the run:

* ``pika.video.completed`` when the row's video was written;
* ``pika.video.failed`` when the row failed (an invalid row, a refused or
  failed job, a row over the budget...).

Rows skipped because they were already done emit nothing.  Each event's
resource is the video::

    {
        "prefect.resource.id": "pika.video.<row id>",
        "prefect.resource.name": "<row id>",
        "pika.output": "<where the MP4 is (or would be)>",
        "pika.row-number": "<1-based data row of the manifest>",
    }

(``pika.video.row-<n>`` names a row that had no valid id.)  Its related
resources are the flow run (``prefect.flow-run.<id>``, role ``flow-run``),
to which Prefect adds the flow, the deployment and tags.  The payload holds
``status``, ``action``, ``request_id``, ``seconds``, ``cost_usd``, ``error``
and ``manifest``.

Example:
    >>> from pika_tasks.events import describe_row
    >>> from pika_tasks.pipeline import RowOutcome
    >>> event = describe_row(
    ...     RowOutcome(id="a", row_number=1, status="failed", error="boom"),
    ...     output_url="/out/a.mp4",
    ...     flow_run_id="6a2f",
    ... )
    >>> event.event, event.resource["prefect.resource.id"], event.payload["error"]
    ('pika.video.failed', 'pika.video.a', 'boom')
    >>> event.related[0]["prefect.resource.id"]
    'prefect.flow-run.6a2f'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect.events import emit_event
from prefect.events.schemas.events import Event
from prefect.logging import get_logger

from pika_tasks.pipeline import RowOutcome

__all__ = [
    "VIDEO_COMPLETED",
    "VIDEO_FAILED",
    "RowEvent",
    "describe_row",
    "emit_described",
    "emit_row_event",
]

VIDEO_COMPLETED = "pika.video.completed"
"""A row's video was written in this run."""
VIDEO_FAILED = "pika.video.failed"
"""A row failed in this run; ``payload["error"]`` says why."""
RESOURCE_PREFIX = "pika.video."

logger = get_logger("pika_tasks.events")


@dataclass(frozen=True)
class RowEvent:
    """The parts of one row's event, as :func:`prefect.events.emit_event` takes them."""

    event: str
    resource: dict[str, str]
    related: list[dict[str, str]] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)


def describe_row(
    outcome: RowOutcome,
    *,
    output_url: str | None,
    flow_run_id: str | None = None,
    flow_run_name: str | None = None,
    manifest: str | None = None,
) -> RowEvent | None:
    """The event for a finished row, or None for a row that needs none (skipped).

    Args:
        outcome: the row's line of the run report.
        output_url: where the row's MP4 is, or would be.
        flow_run_id: the run that finished the row, if any.
        flow_run_name: that run's name.
        manifest: the manifest the row came from.

    Example:
        >>> from pika_tasks.pipeline import RowOutcome
        >>> describe_row(RowOutcome(id="a", row_number=1, status="skipped"), output_url=None)
    """
    if outcome.status == "succeeded":
        name = VIDEO_COMPLETED
    elif outcome.status in ("failed", "cancelled"):
        name = VIDEO_FAILED
    else:
        return None
    row_id = outcome.id or f"row-{outcome.row_number}"
    resource = {
        "prefect.resource.id": f"{RESOURCE_PREFIX}{row_id}",
        "prefect.resource.name": row_id,
        "pika.row-number": str(outcome.row_number),
    }
    if outcome.output or output_url:
        resource["pika.output"] = outcome.output or output_url or ""
    related: list[dict[str, str]] = []
    if flow_run_id:
        flow_run = {
            "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
            "prefect.resource.role": "flow-run",
        }
        if flow_run_name:
            flow_run["prefect.resource.name"] = flow_run_name
        related.append(flow_run)
    payload: dict[str, Any] = {
        "status": outcome.status,
        "action": outcome.action,
        "request_id": outcome.request_id,
        "seconds": outcome.seconds,
        "cost_usd": outcome.cost_usd,
        "error": outcome.error,
        "manifest": manifest,
    }
    return RowEvent(name, resource, related, payload)


def emit_row_event(
    outcome: RowOutcome,
    *,
    output_url: str | None,
    flow_run_id: str | None = None,
    flow_run_name: str | None = None,
    manifest: str | None = None,
) -> Event | None:
    """Emit the row's event (see :func:`describe_row`); return it, or None if none was sent.

    Never raises: an event is a notice, and its loss never stops a row.
    Sending is asynchronous (Prefect's events worker, which reconnects to an
    API that went away and sends again what it had not confirmed); an event
    that cannot be made at all is logged and skipped.

    Example:
        Skipped as a doctest: it sends to a Prefect API.

        >>> from pika_tasks.pipeline import RowOutcome
        >>> emit_row_event(  # doctest: +SKIP
        ...     RowOutcome(id="a", row_number=1, status="succeeded"), output_url="/out/a.mp4"
        ... )
    """
    described = describe_row(
        outcome,
        output_url=output_url,
        flow_run_id=flow_run_id,
        flow_run_name=flow_run_name,
        manifest=manifest,
    )
    return emit_described(described)


def emit_described(described: RowEvent | None) -> Event | None:
    """Emit an event described as a :class:`RowEvent`; return it, or None if none was sent.

    Never raises: an event is a notice (of a row, or of an asset's lineage),
    and its loss never stops a row.

    Example:
        Skipped as a doctest: it sends to a Prefect API.

        >>> emit_described(describe_row(  # doctest: +SKIP
        ...     RowOutcome(id="a", row_number=1, status="failed", error="boom"),
        ...     output_url="/out/a.mp4",
        ... ))
    """
    if described is None:
        return None
    try:
        return emit_event(
            described.event,
            resource=described.resource,
            related=described.related,
            payload=described.payload or None,
        )
    except Exception as error:  # e.g. an event over the server's size limit
        name = described.resource.get("prefect.resource.id")
        logger.warning("%s: its event %s was not sent: %s", name, described.event, error)
        return None
