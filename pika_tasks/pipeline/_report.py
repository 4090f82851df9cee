"""A run's outcomes: one line per row, written as rows finish, read back and counted.

Every run of the batch flow leaves one JSON Lines report,
``{output}/_runs/{UTC time it finished}-{flow run name}.jsonl``, one
:class:`RowOutcome` a line; the time, to the millisecond, orders the reports.
:class:`ReportWriter` writes it as rows finish: lines go to a local spool file,
so a run of any size holds only its counts in memory, and the report is put at
its place in one atomic write when the run ends.
:func:`read_report` and :func:`read_reports` read reports back as
:class:`RunReport` objects; :class:`BatchResult` is the summary both give.

Example:
    >>> from pika_tasks.pipeline import ReportWriter, read_reports
    >>> with ReportWriter("memory://report-doc/out", "brave-fox") as report:
    ...     report.add(RowOutcome(id="a", row_number=1, status="succeeded", cost_usd=0.2))
    ...     report.add(RowOutcome(id="b", row_number=2, status="failed", error="boom",
    ...                           cost_usd=0.2))
    ...     result = report.close()
    >>> result.succeeded, result.failed, result.spend_usd
    (1, 1, 0.4)
    >>> run = read_reports("memory://report-doc/out")[-1]
    >>> run.flow_run_name, [row.error for row in run.failures]
    ('brave-fox', ['boom'])
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, computed_field

from pika_tasks.budget import total_usd
from pika_tasks.errors import ReportError
from pika_tasks.manifest import RowError
from pika_tasks.storage import atomic_writer, filesystem, join, read_text

__all__ = [
    "RUNS_FOLDER",
    "BatchResult",
    "ReportError",
    "ReportWriter",
    "RowOutcome",
    "RowStatus",
    "RunReport",
    "invalid_row_outcome",
    "read_report",
    "read_reports",
    "report_name",
    "report_urls",
]

RUNS_FOLDER = "_runs"
"""The folder, under a batch's output, that holds one report per run."""

_SECONDS_FORMAT = "%Y%m%dT%H%M%S"
# Reports written before milliseconds were added are named to the second.
_TIME_FORMATS = (f"{_SECONDS_FORMAT}.%fZ", f"{_SECONDS_FORMAT}Z")

_COPY_PIECE = 256 * 1024

RowStatus = Literal["succeeded", "failed", "skipped", "cancelled"]


class RowOutcome(BaseModel):
    """One line of a run report: what the run did with one row.

    Attributes:
        id: the row's id (None for a row refused before it had one).
        row_number: the 1-based data row of the manifest.
        status: ``succeeded``, ``failed``, ``skipped`` or ``cancelled``.
        action: what the run did (``submit``, ``reattach``, ``resubmit-expired``...).
        error: why the row failed, naming the row and field where it can.
        output: where its video is.
        request_id: fal's request id, when the row reached fal.
        seconds: how long the row took in this run.
        cost_usd: what this run committed for it at list prices (0 when not submitted).
    """

    id: str | None
    row_number: int
    status: RowStatus
    action: str | None = None
    error: str | None = None
    output: str | None = None
    request_id: str | None = None
    seconds: float | None = None
    cost_usd: float = 0.0


def invalid_row_outcome(error: RowError) -> RowOutcome:
    """The report line of a manifest row that failed validation (nothing was submitted).

    >>> invalid_row_outcome(RowError(row_number=3, field="seed", reason="is not a number")).error
    "row 3, field 'seed': is not a number"
    """
    return RowOutcome(id=error.id, row_number=error.row_number, status="failed", error=str(error))


class BatchResult(BaseModel):
    """What a run did, in counts, plus where its report is.

    Attributes:
        succeeded: rows whose video was written in this run.
        failed: rows that failed (invalid, refused, or failed at fal).
        skipped: rows already done before this run.
        cancelled: rows given up when the run was cancelled.
        submitted: rows submitted (and paid for) in this run.
        spend_usd: this run's spend at list prices.
        report_url: where the run's report is.
    """

    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0
    submitted: int = 0
    spend_usd: float = 0.0
    report_url: str = ""

    @property
    def total(self) -> int:
        """Rows in the manifest, valid or not."""
        return self.succeeded + self.failed + self.skipped + self.cancelled

    @classmethod
    def of(cls, outcomes: Iterable[RowOutcome], report_url: str = "") -> BatchResult:
        """Count outcomes (a report's lines, or the merged lines of scale-out shards).

        >>> BatchResult.of([RowOutcome(id="a", row_number=1, status="skipped")]).skipped
        1
        """
        tally = _Tally()
        for outcome in outcomes:
            tally.add(outcome)
        return tally.result(report_url)


class _Tally:
    """Running counts of outcomes, exact in money."""

    def __init__(self) -> None:
        self.counts = {"succeeded": 0, "failed": 0, "skipped": 0, "cancelled": 0}
        self.submitted = 0
        self.spend = Decimal(0)

    def add(self, outcome: RowOutcome) -> None:
        self.counts[outcome.status] += 1
        if outcome.cost_usd > 0:
            self.submitted += 1
            self.spend += Decimal(str(outcome.cost_usd))

    def result(self, report_url: str) -> BatchResult:
        return BatchResult(
            **self.counts,
            submitted=self.submitted,
            spend_usd=total_usd([float(self.spend)]),
            report_url=report_url,
        )


def report_name(flow_run_name: str | None, when: datetime | None = None) -> str:
    """A run report's name: ``{UTC time, to the millisecond}-{flow run name}``.

    The milliseconds keep two runs that end in the same second in their order.

    >>> report_name("brave-fox", datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    '20260102T030405.678Z-brave-fox'
    """
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return f"{when:{_SECONDS_FORMAT}}.{when.microsecond // 1000:03d}Z-{flow_run_name or 'local'}"


def _report_time(name: str) -> datetime | None:
    """The time in a report's name, or None for a name without one."""
    stamp = name.split("-", 1)[0]
    for time_format in _TIME_FORMATS:
        try:
            return datetime.strptime(stamp, time_format).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


class ReportWriter:
    """Writes one run's report as its rows finish, with memory that does not grow with them.

    Lines go to a local spool file as they are added; :meth:`close` puts the
    report at ``{output}/_runs/{report_name(run_name)}.jsonl`` in one atomic
    write, named by the time it is written, and returns the counts.  The lines
    keep the order rows finished in; readers sort by row.

    Args:
        output: the batch's output folder (any fsspec URL).
        run_name: the flow run's name, which ends the report's name.
        storage_options: fsspec options for ``output``.
    """

    def __init__(
        self, output: str, run_name: str | None, storage_options: dict[str, Any] | None = None
    ) -> None:
        self._output = output
        self._run_name = run_name
        self._storage_options = storage_options or {}
        self._spool = tempfile.TemporaryFile(prefix="pika-report-")  # noqa: SIM115
        self._tally = _Tally()
        self._result: BatchResult | None = None

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._spool.close()

    def add(self, outcome: RowOutcome) -> None:
        """Count one finished row and spool its line."""
        self._tally.add(outcome)
        self._spool.write(outcome.model_dump_json().encode("utf-8") + b"\n")

    @property
    def counts(self) -> BatchResult:
        """The counts so far (``report_url`` set once closed)."""
        return self._result or self._tally.result("")

    def close(self, finished_at: datetime | None = None) -> BatchResult:
        """Write the report to its place (atomically) and return the run's counts.

        Args:
            finished_at: the time its name carries; now when not given.
        """
        if self._result is None:
            self._spool.flush()
            self._spool.seek(0)
            name = report_name(self._run_name, finished_at)
            url = join(self._output, RUNS_FOLDER, f"{name}.jsonl")
            # Copied in pieces: a report is a few hundred bytes a row, megabytes at scale.
            with atomic_writer(url, self._storage_options) as target:
                shutil.copyfileobj(self._spool, target, _COPY_PIECE)
            self._spool.close()
            self._result = self._tally.result(url)
        return self._result


class RunReport(BaseModel):
    """One run's report, read back.

    Attributes:
        name: the report's name (``{UTC time}-{flow run name}``).
        url: where it is.
        rows: its lines, in row order.
    """

    name: str
    url: str
    rows: list[RowOutcome] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def finished_at(self) -> datetime | None:
        """When the run wrote the report (UTC), read from its name."""
        return _report_time(self.name)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def flow_run_name(self) -> str:
        """The flow run's name, from the report's name."""
        _, _, rest = self.name.partition("-")
        return rest if self.finished_at is not None and rest else self.name

    @property
    def result(self) -> BatchResult:
        """The report's counts."""
        return BatchResult.of(self.rows, self.url)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def succeeded(self) -> int:
        """Rows whose video was written in this run."""
        return self.result.succeeded

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failed(self) -> int:
        """Rows that failed in this run."""
        return self.result.failed

    @computed_field  # type: ignore[prop-decorator]
    @property
    def skipped(self) -> int:
        """Rows already done before this run."""
        return self.result.skipped

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cancelled(self) -> int:
        """Rows given up when the run was cancelled."""
        return self.result.cancelled

    @computed_field  # type: ignore[prop-decorator]
    @property
    def submitted(self) -> int:
        """Rows submitted (and paid for) in this run."""
        return self.result.submitted

    @computed_field  # type: ignore[prop-decorator]
    @property
    def spend_usd(self) -> float:
        """This run's spend at list prices."""
        return self.result.spend_usd

    @property
    def failures(self) -> list[RowOutcome]:
        """The failed rows, with their reasons."""
        return [row for row in self.rows if row.status == "failed"]


def read_report(url: str, storage_options: dict[str, Any] | None = None) -> RunReport:
    """Read one run report.

    Raises:
        ReportError: the file is missing or a line is not a row outcome.

    Example:
        >>> read_report("memory://report-doc/none.jsonl")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pika_tasks.errors.ReportError: cannot read the run report ...none.jsonl: ...
    """
    try:
        text = read_text(url, storage_options or {})
    except (OSError, ValueError) as error:
        raise ReportError(f"cannot read the run report {url}: {error!r}") from error
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(RowOutcome.model_validate_json(line))
        except ValidationError as error:
            raise ReportError(f"{url}, line {number}: not a row outcome: {error}") from error
    name = posixpath.basename(url).removesuffix(".jsonl")
    return RunReport(name=name, url=url, rows=sorted(rows, key=lambda row: row.row_number))


def report_urls(output: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """URLs of every run report under ``output/_runs/``, oldest first."""
    fs, path = filesystem(join(output, RUNS_FOLDER), storage_options)
    if not fs.exists(path):
        return []
    names = sorted(
        (posixpath.basename(p) for p in fs.ls(path, detail=False) if p.endswith(".jsonl")),
        key=_oldest_first,
    )
    return [join(output, RUNS_FOLDER, name) for name in names]


def _oldest_first(file_name: str) -> tuple[datetime, str]:
    """Order reports by the time in their names (names without one first), then by name."""
    return (_report_time(file_name) or datetime.min.replace(tzinfo=UTC), file_name)


def read_reports(
    output: str,
    storage_options: dict[str, Any] | None = None,
    *,
    latest_only: bool = False,
) -> list[RunReport]:
    """Every run report under ``output/_runs/``, oldest first (or only the latest).

    Args:
        output: the batch's output folder (any fsspec URL).
        storage_options: fsspec options for it.
        latest_only: read only the newest report.

    Returns:
        The reports; an empty list when there are none.

    Raises:
        ReportError: a report cannot be read.
    """
    urls = report_urls(output, storage_options)
    if latest_only:
        urls = urls[-1:]
    return [read_report(url, storage_options) for url in urls]
