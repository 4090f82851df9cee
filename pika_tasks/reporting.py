"""Reading back the run reports a batch leaves under ``{output}/_runs/``.

Every run of the batch flow writes one JSON Lines report,
``_runs/{UTC time}-{flow run name}.jsonl``, one
:class:`~pika_tasks.records.RowOutcome` a line.  :func:`read_reports` reads
them back, oldest first, as :class:`RunReport` objects with their counts,
failures and spend.

Example:
    >>> from pika_tasks.records import OutputLocation, RowOutcome
    >>> from pika_tasks.reporting import read_reports
    >>> out = OutputLocation("memory://reporting-doc/out")
    >>> _ = out.write_report("20260101T000000Z-brave-fox", [
    ...     RowOutcome(id="a", row_number=1, status="succeeded", cost_usd=0.2),
    ...     RowOutcome(id="b", row_number=2, status="failed", error="boom", cost_usd=0.2),
    ... ])
    >>> report = read_reports("memory://reporting-doc/out")[-1]
    >>> report.flow_run_name, report.succeeded, report.failed, report.spend_usd
    ('brave-fox', 1, 1, 0.4)
    >>> [row.error for row in report.failures]
    ['boom']
"""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError, computed_field

from pika_tasks.budget import total_usd
from pika_tasks.errors import PikaError
from pika_tasks.records import OutputLocation, RowOutcome
from pika_tasks.storage import read_text

__all__ = ["ReportError", "RunReport", "read_report", "read_reports"]

_TIME_FORMAT = "%Y%m%dT%H%M%SZ"


class ReportError(PikaError):
    """A run report cannot be read, or there is none where one was expected."""


class RunReport(BaseModel):
    """One run's report.

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
        stamp = self.name.split("-", 1)[0]
        try:
            return datetime.strptime(stamp, _TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            return None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def flow_run_name(self) -> str:
        """The flow run's name, from the report's name."""
        _, _, rest = self.name.partition("-")
        return rest if self.finished_at is not None and rest else self.name

    def _count(self, status: str) -> int:
        return sum(row.status == status for row in self.rows)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def succeeded(self) -> int:
        """Rows whose video was written in this run."""
        return self._count("succeeded")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failed(self) -> int:
        """Rows that failed in this run."""
        return self._count("failed")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def skipped(self) -> int:
        """Rows already done before this run."""
        return self._count("skipped")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cancelled(self) -> int:
        """Rows given up when the run was cancelled."""
        return self._count("cancelled")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def submitted(self) -> int:
        """Rows submitted (and paid for) in this run."""
        return sum(row.cost_usd > 0 for row in self.rows)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def spend_usd(self) -> float:
        """This run's spend at list prices."""
        return total_usd(row.cost_usd for row in self.rows)

    @property
    def failures(self) -> list[RowOutcome]:
        """The failed rows, with their reasons."""
        return [row for row in self.rows if row.status == "failed"]


def read_report(url: str, storage_options: dict[str, Any] | None = None) -> RunReport:
    """Read one run report.

    Raises:
        ReportError: the file is missing or a line is not a row outcome.

    Example:
        >>> read_report("memory://reporting-doc/none.jsonl")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pika_tasks.reporting.ReportError: cannot read the run report ...none.jsonl: ...
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
    urls = OutputLocation(output, storage_options).reports()
    if latest_only:
        urls = urls[-1:]
    return [read_report(url, storage_options) for url in urls]
