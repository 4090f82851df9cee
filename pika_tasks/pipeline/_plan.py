"""Planning a row: read its image once, look its record up, decide what to do.

One planner serves the batch flow, the scale-out flow and ``estimate``, so
"done", "changed" and "to pay" mean the same everywhere:

* :func:`decide` turns a row's record into an :class:`Action`: skip,
  re-attach, submit, or unknown (a submit that may have reached fal unrecorded);
* :class:`Planner` reads and checks the row's image (keeping its bytes for the
  submit, so an image is read once per row), fingerprints the row and decides;
* :func:`scan_manifest` is the cheap first pass, with no image read: it counts
  the rows and prices those certain to be submitted (no record at the output),
  so a budget can be refused before anything is paid.

Example:
    >>> from pika_tasks.pipeline import Action, decide
    >>> decide(None, "f", video_exists=False)
    <Action.SUBMIT: 'submit'>
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pika_tasks.budget import Budget, total_usd, usd
from pika_tasks.images import ImageCheck, ImageLimits, inspect_image
from pika_tasks.manifest import ManifestRow, RowError
from pika_tasks.pipeline._report import RowOutcome
from pika_tasks.pricing import PriceTable
from pika_tasks.records import OutputLocation, RowRecord, fingerprint

__all__ = [
    "Action",
    "ManifestScan",
    "Planner",
    "RowPlan",
    "decide",
    "row_fingerprint",
    "scan_manifest",
]


class Action(StrEnum):
    """What a run does with a row, decided from its record."""

    SKIP = "skip"  # done for these inputs: nothing to pay
    REATTACH = "reattach"  # submitted earlier (or cancelled): wait for and fetch that request
    SUBMIT = "submit"  # never reached the queue, failed or inputs changed
    UNKNOWN = "unknown"  # a submit may have reached fal; its answer was never recorded


def decide(
    record: RowRecord | None,
    row_fingerprint: str,
    video_exists: bool,
    *,
    resubmit_unknown: bool = False,
) -> Action:
    """The action for a row, given its record and whether its video is there.

    >>> record = RowRecord(id="a", state="submitting", fingerprint="f")
    >>> decide(record, "f", video_exists=False)
    <Action.UNKNOWN: 'unknown'>
    >>> decide(record, "changed", video_exists=False)
    <Action.SUBMIT: 'submit'>
    """
    if record is None or record.fingerprint != row_fingerprint:
        return Action.SUBMIT
    if record.state == "submitting":
        return Action.SUBMIT if resubmit_unknown else Action.UNKNOWN
    if record.state == "succeeded" and video_exists:
        return Action.SKIP
    # A cancelled run's request too: fal may have finished (and billed) it anyway.
    if record.request is not None and record.state in ("submitted", "succeeded", "cancelled"):
        return Action.REATTACH
    return Action.SUBMIT


def row_fingerprint(row: ManifestRow, image_sha256: str, endpoint_id: str) -> str:
    """The fingerprint of what a row asks fal for: its image's bytes and its inputs.

    >>> row = ManifestRow(row_number=1, id="a", image="/in/a.png", prompt="waves")
    >>> len(row_fingerprint(row, "0" * 64, "fal-ai/pika/v2.2/image-to-video"))
    64
    """
    return fingerprint(
        {
            "endpoint_id": endpoint_id,
            "image_sha256": image_sha256,
            "prompt": row.prompt,
            "negative_prompt": row.negative_prompt,
            "resolution": row.resolution,
            "duration": row.duration,
            "seed": row.seed,
        }
    )


@dataclass
class RowPlan:
    """A row, its checked image (bytes kept until the submit) and what to do with it."""

    row: ManifestRow
    check: ImageCheck
    fingerprint: str
    record: RowRecord | None
    action: Action


@dataclass
class Planner:
    """Plans rows: one image read, one record lookup, one decision per row.

    Args:
        out: the output location whose records say what is done; None plans
            every valid row as to submit (an estimate without an output).
        image_storage_options: fsspec options for the rows' images.
        limits: what images are accepted (and from which addresses).
        endpoint_id: the model endpoint, part of every fingerprint.
        resubmit_unknown: plan rows with an unrecorded earlier submit as to submit.
    """

    out: OutputLocation | None
    image_storage_options: dict[str, Any] = field(default_factory=dict)
    limits: ImageLimits = field(default_factory=ImageLimits)
    endpoint_id: str = "fal-ai/pika/v2.2/image-to-video"
    resubmit_unknown: bool = False

    async def plan(self, row: ManifestRow) -> RowPlan | RowOutcome:
        """The row's plan, or its failed outcome when its image cannot be used."""
        try:
            check = await inspect_image(
                row.image,
                storage_options=self.image_storage_options,
                limits=self.limits,
                keep_data=True,
            )
        except Exception as error:  # any store's error is this row's problem, not the run's
            return RowOutcome(
                id=row.id,
                row_number=row.row_number,
                status="failed",
                error=f"row {row.row_number}, field 'image': {error}",
            )
        row_print = row_fingerprint(row, check.sha256, self.endpoint_id)
        if self.out is None:
            return RowPlan(row, check, row_print, None, Action.SUBMIT)
        record = await asyncio.to_thread(self.out.load, row.id)
        video_exists = await asyncio.to_thread(self.out.video_exists, record)
        action = decide(record, row_print, video_exists, resubmit_unknown=self.resubmit_unknown)
        if action is not Action.SUBMIT:
            check.drop_data()  # only a submit sends the bytes: hold none for the others
        return RowPlan(row, check, row_print, record, action)


@dataclass
class ManifestScan:
    """The cheap first pass over a manifest: counts and a floor on the spend.

    Attributes:
        rows: rows in the manifest, valid or not.
        invalid: rows refused by validation.
        new: valid rows with no record at the output: certain to be submitted.
        new_usd: what those cost at list prices.
    """

    rows: int = 0
    invalid: int = 0
    new: int = 0
    new_usd: float = 0.0

    def count(
        self, item: ManifestRow | RowError, *, recorded_ids: set[str], prices: PriceTable
    ) -> None:
        """Add one of the manifest's items (see :func:`scan_manifest`)."""
        self.rows += 1
        if isinstance(item, RowError):
            self.invalid += 1
        elif item.id not in recorded_ids:
            self.new += 1
            self.new_usd = total_usd([self.new_usd, prices.cost(item.resolution, item.duration)])

    def over_cap(self, limit_usd: float) -> str | None:
        """Why a run under ``limit_usd`` is refused before it pays anything; None if it fits.

        >>> ManifestScan(rows=2, new=2, new_usd=0.4).over_cap(0.3)
        'not started: the 2 rows to submit cost $0.40 at list prices, more than max_spend_usd $0.30'
        """
        if Budget(limit_usd=limit_usd).allows(self.new_usd):
            return None
        return (
            f"not started: the {self.new} rows to submit cost {usd(self.new_usd)} at list "
            f"prices, more than max_spend_usd {usd(limit_usd)}"
        )


def scan_manifest(
    items: Iterable[ManifestRow | RowError],
    *,
    recorded_ids: set[str],
    prices: PriceTable,
) -> ManifestScan:
    """Count a manifest's rows and price the ones certain to be submitted (no image reads).

    A row with a record at the output may be skipped or re-attached for free,
    or submitted again when its inputs changed; only the planner can tell, so
    it is not priced here.  The run's per-row budget hold keeps the cap exact.

    Example:
        >>> rows = [ManifestRow(row_number=n, id=f"r{n}", image="/a.png", prompt="p")
        ...         for n in (1, 2, 3)]
        >>> scan = scan_manifest(rows, recorded_ids={"r2"}, prices=PriceTable())
        >>> scan.rows, scan.new, scan.new_usd
        (3, 2, 0.4)
    """
    scan = ManifestScan()
    for item in items:
        scan.count(item, recorded_ids=recorded_ids, prices=prices)
    return scan
