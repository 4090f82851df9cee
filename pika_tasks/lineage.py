"""Asset lineage: every video a run writes is a Prefect asset materialization.

For each video written, the batch flow emits Prefect's
``prefect.asset.materialization.succeeded`` event, shaped by Prefect's own
asset API (:class:`prefect.assets.Asset` and the helpers of
:class:`prefect.context.AssetContext`, which a ``@materialize`` task uses):

* resource: the video's asset, keyed by its output URI (:func:`~pika_tasks.keys.asset_key`:
  ``s3://bucket/out/a.mp4``, ``file:///srv/out/a.mp4``), named after the row id;
* related: the manifest and the row's image as upstream assets (role
  ``asset``), and ``pika-tasks`` as the tool that materialized it (role
  ``asset-materialized-by``), to which Prefect adds the flow run;
* payload: the metadata ``size`` (bytes), ``sha256``, ``cost_usd`` (list
  price), ``content_type``, ``request_id``, ``row_id`` and ``row_number``.

A ``@materialize`` task would cost a task run per video (three API writes
more a row) and a ``prefect.asset.referenced`` event per upstream asset per
video, so the flow sends the same events without the task run, and the
manifest's ``prefect.asset.referenced`` once per run
(:func:`describe_reference`), before its first video.  Images are named as
upstream assets of their video and get no event of their own: one event per
video is what a row costs.

Example:
    >>> event = describe_materialization(
    ...     VideoWritten(row_id="a", row_number=1, output="s3://b/out/a.mp4", size=5,
    ...                  sha256="ab", cost_usd=0.2, image="s3://b/in/a.png"),
    ...     manifest="s3://b/in/manifest.csv",
    ... )
    >>> event.event, event.resource["prefect.resource.id"], event.payload["size"]
    ('prefect.asset.materialization.succeeded', 's3://b/out/a.mp4', 5)
    >>> for related in event.related:
    ...     print(related["prefect.resource.role"], related["prefect.resource.id"])
    asset s3://b/in/manifest.csv
    asset s3://b/in/a.png
    asset-materialized-by pika-tasks
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect.assets import Asset, AssetProperties
from prefect.context import AssetContext
from pydantic import ValidationError

from pika_tasks.events import RowEvent
from pika_tasks.keys import asset_key

__all__ = [
    "ASSET_MATERIALIZED",
    "ASSET_REFERENCED",
    "MATERIALIZED_BY",
    "VideoWritten",
    "describe_materialization",
    "describe_reference",
]

ASSET_MATERIALIZED = "prefect.asset.materialization.succeeded"
"""Prefect's event for an asset written."""
ASSET_REFERENCED = "prefect.asset.referenced"
"""Prefect's event for an asset read."""
MATERIALIZED_BY = "pika-tasks"
"""The tool named as the videos' maker."""


@dataclass(frozen=True)
class VideoWritten:
    """A video this run wrote, with what its materialization event says of it.

    Attributes:
        row_id: the row's id (the asset's name).
        row_number: its 1-based data row in the manifest.
        output: where the MP4 is.
        size: its size in bytes.
        sha256: its SHA-256, in hex.
        cost_usd: what the run committed for it at list prices.
        image: the row's first frame, as the manifest names it (None: unknown).
        content_type: the MP4's content type, when the server gave one.
        request_id: fal's request id.
    """

    row_id: str
    row_number: int
    output: str
    size: int
    sha256: str
    cost_usd: float = 0.0
    image: str | None = None
    content_type: str | None = None
    request_id: str | None = None


def _asset(location: str, name: str | None = None) -> Asset | None:
    """The asset at ``location``, or None when no valid key can name it (a ``data:`` URI)."""
    if location.startswith("data:"):
        return None
    try:
        properties = AssetProperties(name=name) if name else None
        return Asset(key=asset_key(location), properties=properties)
    except ValidationError:
        return None


def describe_reference(manifest: str) -> RowEvent | None:
    """The run's ``prefect.asset.referenced`` event for its manifest.

    >>> describe_reference("/in/manifest.csv").resource
    {'prefect.resource.id': 'file:///in/manifest.csv'}
    """
    asset = _asset(manifest)
    if asset is None:
        return None
    return RowEvent(ASSET_REFERENCED, AssetContext.asset_as_resource(asset))


def describe_materialization(video: VideoWritten, *, manifest: str) -> RowEvent | None:
    """The ``prefect.asset.materialization.succeeded`` event of one video written.

    Args:
        video: the video.
        manifest: the manifest its row came from.

    Returns:
        The event's parts, or None when the output has no valid asset key.
    """
    asset = _asset(video.output, video.row_id)
    if asset is None:
        return None
    upstream = [a for a in (_asset(manifest), video.image and _asset(video.image)) if a]
    related = [AssetContext.asset_as_related(a) for a in upstream]
    related.append(AssetContext.related_materialized_by(MATERIALIZED_BY))
    payload = {
        "size": video.size,
        "sha256": video.sha256,
        "cost_usd": video.cost_usd,
        "content_type": video.content_type,
        "request_id": video.request_id,
        "row_id": video.row_id,
        "row_number": video.row_number,
    }
    return RowEvent(ASSET_MATERIALIZED, AssetContext.asset_as_resource(asset), related, payload)
