"""A dry run of the batch flow: what a manifest would cost, checked row by row, nothing sent.

:func:`estimate_batch` reads and checks the manifest, reads and checks every
image (as the flow does before submitting), and works out how each image
would reach fal (passed through, signed URL, inline data URI or upload),
without submitting a job or uploading a byte.  With an output folder it also
reads the rows' records there, as a re-run would: rows already done are
skipped and rows submitted earlier are re-attached to their request, both
for free.

Example:
    Skipped as a doctest: it reads the repository's example manifest and its
    images, relative to the working directory.

    >>> import asyncio
    >>> estimate = asyncio.run(  # doctest: +SKIP
    ...     estimate_batch("examples/manifest.csv", "out/example")
    ... )
    >>> estimate.to_submit, estimate.submit_usd, estimate.ok  # doctest: +SKIP
    (3, 0.6, True)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field, computed_field

from pika_tasks.budget import Budget, total_usd
from pika_tasks.errors import PikaError
from pika_tasks.images import ImageLimits, ImageSource, deliver_image
from pika_tasks.manifest import ManifestError, ManifestRow, RowDefaults, RowError, iter_manifest
from pika_tasks.models import Duration, Resolution
from pika_tasks.pipeline import (
    Action,
    Planner,
    RowOutcome,
    RowPlan,
    scan_manifest,
    started,
    stream_rows,
)
from pika_tasks.pricing import PriceTable
from pika_tasks.records import OutputLocation
from pika_tasks.settings import PikaSettings

__all__ = ["CostEstimate", "CostLine", "InvalidRow", "estimate_batch"]


class InvalidRow(BaseModel):
    """A row the run would report as failed without submitting it.

    Attributes:
        row_number: the 1-based data row.
        id: its id, when it had a valid one.
        error: why, naming the field at fault.
    """

    row_number: int
    id: str | None = None
    error: str


class CostLine(BaseModel):
    """The rows of one resolution and duration.

    Attributes:
        resolution: ``720p`` or ``1080p``.
        duration: 5 or 10 seconds.
        unit_usd: the price of one such video.
        to_submit: rows that would be submitted (and paid for).
        to_reattach: rows submitted earlier, to be fetched for free.
        to_skip: rows already done.
        unknown: rows whose earlier submit may have reached fal unrecorded;
            the run reports them instead of paying twice.
    """

    resolution: Resolution
    duration: Duration
    unit_usd: float
    to_submit: int = 0
    to_reattach: int = 0
    to_skip: int = 0
    unknown: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def submit_usd(self) -> float:
        """What the rows to submit cost at list prices."""
        return total_usd([self.unit_usd] * self.to_submit)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reattach_usd(self) -> float:
        """List price of the rows to re-attach: paid for earlier, free now."""
        return total_usd([self.unit_usd] * self.to_reattach)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def skip_usd(self) -> float:
        """List price of the rows already done: free now."""
        return total_usd([self.unit_usd] * self.to_skip)


class CostEstimate(BaseModel):
    """What running a manifest (into an output folder) would do and cost.

    Attributes:
        manifest: the manifest.
        output: the output folder looked at, if any.
        rows: rows in the manifest, valid or not.
        invalid: the rows that would fail before submitting, with reasons.
        lines: counts and prices per resolution and duration.
        images: how the images of the rows to submit would reach fal, by
            :class:`~pika_tasks.images.ImageSource` (``upload`` means fal's storage).
        max_spend_usd: the cap checked, if any.
        checked_usd: what a run's up-front check prices before it pays anything: the
            rows with no record at the output, images unread (a row whose image turns
            out unusable counts; one whose inputs changed since its record does not).
            The cap is judged on this figure, as the run judges it.
    """

    manifest: str
    output: str | None = None
    rows: int
    invalid: list[InvalidRow] = Field(default_factory=list)
    lines: list[CostLine] = Field(default_factory=list)
    images: dict[str, int] = Field(default_factory=dict)
    max_spend_usd: float | None = None
    checked_usd: float | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def to_submit(self) -> int:
        """Rows that would be submitted."""
        return sum(line.to_submit for line in self.lines)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def to_reattach(self) -> int:
        """Rows that would be re-attached to an earlier request, for free."""
        return sum(line.to_reattach for line in self.lines)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def to_skip(self) -> int:
        """Rows already done."""
        return sum(line.to_skip for line in self.lines)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def unknown(self) -> int:
        """Rows reported, not submitted, because an earlier submit may have reached fal."""
        return sum(line.unknown for line in self.lines)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def submit_usd(self) -> float:
        """What the run would spend at list prices."""
        return total_usd(line.submit_usd for line in self.lines)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reattach_usd(self) -> float:
        """List price of the re-attached rows: paid for earlier, free now."""
        return total_usd(line.reattach_usd for line in self.lines)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def skip_usd(self) -> float:
        """List price of the rows already done: free now."""
        return total_usd(line.skip_usd for line in self.lines)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def within_budget(self) -> bool | None:
        """Whether a run would start under ``max_spend_usd`` (None without a cap): its
        up-front check of :attr:`judged_usd` passes."""
        if self.max_spend_usd is None:
            return None
        return Budget(limit_usd=self.max_spend_usd).allows(self.judged_usd)

    @property
    def judged_usd(self) -> float:
        """The figure the cap is judged on: ``checked_usd``, ``submit_usd`` when unknown."""
        return self.submit_usd if self.checked_usd is None else self.checked_usd

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cap_reached_mid_run(self) -> bool:
        """A run would start, but the rows to submit cost more than the cap: the last
        ones would be refused one by one when the spend reaches it."""
        cap = self.max_spend_usd
        return bool(self.within_budget) and not Budget(limit_usd=cap).allows(self.submit_usd)

    @property
    def ok(self) -> bool:
        """True when every row is valid and the cost fits the cap."""
        return not self.invalid and self.within_budget is not False


async def _would_upload(data: bytes, content_type: str, file_name: str) -> str:
    """Stands in for fal's storage: records the decision, sends nothing."""
    return f"upload:{file_name}"


async def _image_source(plan: RowPlan, storage_options: dict[str, Any]) -> ImageSource:
    """How the row's image would reach fal, found without sending anything."""
    delivered = await deliver_image(
        plan.check, storage_options=storage_options, upload=_would_upload
    )
    return delivered.source


async def estimate_batch(
    manifest: str,
    output: str | None = None,
    *,
    defaults: RowDefaults | None = None,
    storage_options: dict[str, Any] | None = None,
    output_storage_options: dict[str, Any] | None = None,
    allow_private_image_urls: bool = False,
    resubmit_unknown: bool = False,
    max_spend_usd: float | None = None,
    max_concurrency: int = 8,
    settings: PikaSettings | None = None,
    image_root: str | None = None,
) -> CostEstimate:
    """Check every row and image of a manifest and price the run, sending nothing to fal.

    Rows are planned by the same :class:`~pika_tasks.pipeline.Planner` as the
    run's, streamed from the manifest with ``max_concurrency`` images read at once.

    Args:
        manifest: CSV, JSON Lines, JSON or Parquet manifest at any fsspec URL.
        output: the run's output folder, to count rows already done or
            submitted there; None prices every valid row.
        defaults: values for rows that leave fields empty (as the run's options).
        storage_options: fsspec options for the manifest and images.
        output_storage_options: fsspec options for ``output`` (default: ``storage_options``).
        allow_private_image_urls: accept http(s) images on private addresses.
        resubmit_unknown: count rows with an unrecorded earlier submit as to submit.
        max_spend_usd: a cap to check the cost against.
        max_concurrency: images read at once.
        settings: prices (``PIKA_PRICE_USD_*``) and endpoint; default: the environment.
        image_root: confine local images to this folder (as the run's ``image_root``).

    Returns:
        The :class:`CostEstimate`.

    Raises:
        ManifestError: the manifest cannot be read at all, or breaks after its first rows.

    Example:
        Skipped as a doctest: it needs a manifest and its images on disk.

        >>> estimate = await estimate_batch("in/manifest.csv", max_spend_usd=5)  # doctest: +SKIP
        >>> estimate.submit_usd, estimate.within_budget  # doctest: +SKIP
        (0.6, True)
    """
    settings = settings or PikaSettings()
    prices = PriceTable.from_settings(settings)
    storage = storage_options or {}
    out = (
        OutputLocation(
            output, output_storage_options if output_storage_options is not None else storage
        )
        if output is not None
        else None
    )
    planner = Planner(
        out,
        storage,
        ImageLimits(allow_private_addresses=allow_private_image_urls, local_root=image_root),
        settings.endpoint_id,
        resubmit_unknown,
    )
    # A manifest that cannot be read at all raises here, before any image is read.
    items = await started(iter_manifest(manifest, defaults=defaults, storage_options=storage))
    invalid: list[InvalidRow] = []
    counts: Counter[tuple[Resolution, Duration, Action]] = Counter()
    images: Counter[str] = Counter()
    rows = 0

    async def tally(plan: RowPlan) -> RowOutcome:
        row = plan.row
        outcome = RowOutcome(id=row.id, row_number=row.row_number, status="skipped")
        try:
            if plan.action is Action.SUBMIT:
                images[(await _image_source(plan, storage)).value] += 1
        except PikaError as error:
            return outcome.model_copy(
                update={
                    "status": "failed",
                    "error": f"row {row.row_number}, field 'image': {error}",
                }
            )
        finally:
            plan.check.drop_data()
        counts[row.resolution, row.duration, plan.action] += 1
        return outcome

    def refused(outcome: RowOutcome) -> None:
        # Rows refused by validation, by their image, or by how it would reach fal.
        if outcome.status == "failed":
            invalid.append(
                InvalidRow(row_number=outcome.row_number, id=outcome.id, error=outcome.error or "")
            )

    broken: list[ManifestError] = []

    def counted(items: Iterator[ManifestRow | RowError]) -> Iterator[ManifestRow | RowError]:
        nonlocal rows
        try:
            for item in items:
                rows += 1
                yield item
        except ManifestError as error:
            # Kept and raised once the rows read are done: raised from inside the
            # stream, it would come out wrapped in an ExceptionGroup.
            broken.append(error)

    await stream_rows(
        counted(items),
        plan=planner.plan,
        run=tally,
        on_outcome=refused,
        workers=max(1, max_concurrency),
        lookahead=max(1, max_concurrency),
    )
    if broken:
        raise broken[0]
    # The run's own up-front check, on the same cheap pass it makes: the cap is judged
    # on what the run would judge it, not on the planned figure.
    scan = await asyncio.to_thread(
        scan_manifest,
        iter_manifest(manifest, defaults=defaults, storage_options=storage),
        recorded_ids=await asyncio.to_thread(out.recorded_ids) if out is not None else set(),
        prices=prices,
    )
    kinds = sorted({(resolution, duration) for resolution, duration, _ in counts})
    lines = [
        CostLine(
            resolution=resolution,
            duration=duration,
            unit_usd=prices.cost(resolution, duration),
            to_submit=counts[resolution, duration, Action.SUBMIT],
            to_reattach=counts[resolution, duration, Action.REATTACH],
            to_skip=counts[resolution, duration, Action.SKIP],
            unknown=counts[resolution, duration, Action.UNKNOWN],
        )
        for resolution, duration in sorted(kinds, key=lambda kind: (kind[0] != "720p", kind[1]))
    ]
    invalid.sort(key=lambda problem: problem.row_number)
    return CostEstimate(
        manifest=manifest,
        output=output,
        rows=rows,
        invalid=invalid,
        lines=lines,
        images=dict(images),
        max_spend_usd=max_spend_usd,
        checked_usd=scan.new_usd,
    )
