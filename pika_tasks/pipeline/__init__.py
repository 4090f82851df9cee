"""The row pipeline: a manifest row's straight line to its MP4, shared by every flow.

``manifest row -> plan -> submit -> wait -> fetch -> record -> outcome -> report``

* :mod:`~pika_tasks.pipeline._plan`: one image read, one record lookup and a
  decision per row (:class:`Planner`, :func:`decide`), and the cheap first pass
  that prices a manifest before anything is paid (:func:`scan_manifest`);
* :mod:`~pika_tasks.pipeline._row`: one row's state machine (:func:`run_row`),
  over the calls to fal a :class:`RowSteps` provides (the flows' Prefect
  tasks, or :class:`ClientSteps` on a plain client);
* :mod:`~pika_tasks.pipeline._claiming`: a row's claim taken before it is paid
  for, so runs that overlap on one output pay once (:class:`RowClaims`);
* :mod:`~pika_tasks.pipeline._stream`: rows read, planned and run as they come,
  with bounded memory (:func:`stream_rows`), and the first pass that counts and
  prices them beside the run (:class:`FirstPass`);
* :mod:`~pika_tasks.pipeline._report`: each row's :class:`RowOutcome`, the run's
  report written as rows finish and read back, and its :class:`BatchResult`;
* :mod:`~pika_tasks.pipeline._options`: what a run is asked to do, as the typed
  parameters of the flows (:class:`Location`, :class:`BatchLimits`).

Nothing here imports Prefect: the flows wire these pieces to Prefect tasks,
artifacts and events, and ``estimate`` and ``report`` use them without it.

Example:
    >>> from pika_tasks.pipeline import BatchResult, RowOutcome
    >>> result = BatchResult.of(
    ...     [RowOutcome(id="a", row_number=1, status="succeeded", cost_usd=0.2)]
    ... )
    >>> result.succeeded, result.submitted, result.spend_usd
    (1, 1, 0.2)
"""

from pika_tasks.pipeline._claiming import HeldElsewhere, RowClaims
from pika_tasks.pipeline._client_steps import ClientSteps, copy_video
from pika_tasks.pipeline._first_pass import FirstPass
from pika_tasks.pipeline._options import DEFAULT_LIMIT_NAME, BatchLimits, Location
from pika_tasks.pipeline._plan import (
    Action,
    ManifestScan,
    Planner,
    RowPlan,
    decide,
    row_fingerprint,
    scan_manifest,
)
from pika_tasks.pipeline._report import (
    RUNS_FOLDER,
    BatchResult,
    ReportError,
    ReportWriter,
    RowOutcome,
    RowStatus,
    RunReport,
    invalid_row_outcome,
    read_report,
    read_reports,
    report_name,
    report_urls,
)
from pika_tasks.pipeline._row import RowContext, RowSteps, run_row
from pika_tasks.pipeline._stream import started, stream_rows

__all__ = [
    "DEFAULT_LIMIT_NAME",
    "RUNS_FOLDER",
    "Action",
    "BatchLimits",
    "BatchResult",
    "ClientSteps",
    "FirstPass",
    "HeldElsewhere",
    "Location",
    "ManifestScan",
    "Planner",
    "ReportError",
    "ReportWriter",
    "RowClaims",
    "RowContext",
    "RowOutcome",
    "RowPlan",
    "RowStatus",
    "RowSteps",
    "RunReport",
    "copy_video",
    "decide",
    "invalid_row_outcome",
    "read_report",
    "read_reports",
    "report_name",
    "report_urls",
    "row_fingerprint",
    "run_row",
    "scan_manifest",
    "started",
    "stream_rows",
]
