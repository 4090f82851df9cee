"""The run report: written as rows finish, visible only once whole, read back and counted."""

from __future__ import annotations

import tracemalloc
import uuid
from datetime import UTC, datetime
from pathlib import Path

import fsspec

from pika_tasks.pipeline import (
    BatchResult,
    ReportWriter,
    RowOutcome,
    read_report,
    read_reports,
    report_name,
    report_urls,
)


def outcome(number: int, status: str = "succeeded", cost: float = 0.2) -> RowOutcome:
    return RowOutcome(id=f"r{number}", row_number=number, status=status, cost_usd=cost)  # type: ignore[arg-type]


def test_a_report_appears_only_when_closed_and_reads_back_in_row_order() -> None:
    out = f"memory://report-{uuid.uuid4().hex[:8]}/out"
    with ReportWriter(out, "brave-fox") as report:
        for number in (3, 1, 2):
            report.add(outcome(number))
        assert report_urls(out) == [], "a report is visible before the run ended"
        result = report.close()
    assert report_urls(out) == [result.report_url]
    back = read_report(result.report_url)
    assert [row.row_number for row in back.rows] == [1, 2, 3]
    assert back.flow_run_name == "brave-fox" and back.result == result
    assert (result.succeeded, result.submitted, result.spend_usd) == (3, 3, 0.6)


def test_counts_are_exact_in_money_and_by_status() -> None:
    rows = [outcome(1, cost=0.1), outcome(2, cost=0.2), outcome(3, "failed", 0.0)]
    rows += [outcome(4, "skipped", 0.0), outcome(5, "cancelled", 0.45)]
    result = BatchResult.of(rows)
    assert result.spend_usd == 0.75  # 0.1 + 0.2 + 0.45 without float drift
    assert (result.succeeded, result.failed, result.skipped, result.cancelled) == (2, 1, 1, 1)
    assert (result.submitted, result.total) == (3, 5)


def test_writing_a_large_report_holds_counts_not_lines(tmp_path: Path) -> None:
    with ReportWriter(str(tmp_path / "out"), "big") as report:
        report.add(outcome(0))
        tracemalloc.start(64)
        for number in range(1, 20_001):
            report.add(outcome(number, "failed" if number % 7 == 0 else "succeeded"))
        # What the adds left allocated, counted only where the writer is on the stack:
        # other threads (servers of earlier tests) allocate too, and are not its doing.
        mine = tracemalloc.Filter(True, "*/pipeline/_report.py", all_frames=True)
        held = sum(t.size for t in tracemalloc.take_snapshot().filter_traces([mine]).traces)
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        result = report.close()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    # 20,000 lines are ~3 MB of text; what stays in memory while adding is a few KB,
    # and the report is copied to its place in pieces, not read whole.
    size = Path(result.report_url).stat().st_size
    assert held < 200_000, held
    assert size > 2_000_000 and peak - before < size // 3, (peak - before, size)
    assert result.total == 20_001 and result.failed == 20_000 // 7
    with fsspec.open(result.report_url, "rt") as handle:
        assert sum(1 for _ in handle) == 20_001


def test_reports_are_listed_oldest_first() -> None:
    out = f"memory://report-{uuid.uuid4().hex[:8]}/out"
    for name, day in (("b", 2), ("a", 1)):
        with ReportWriter(out, name) as report:
            report.add(outcome(1))
            report.close(finished_at=datetime(2026, 1, day, tzinfo=UTC))
    assert [r.flow_run_name for r in read_reports(out)] == ["a", "b"]
    assert [r.flow_run_name for r in read_reports(out, latest_only=True)] == ["b"]


def test_runs_that_end_in_the_same_second_keep_their_order() -> None:
    # A later run whose name sorts first ("a" < "z") within one second is still the latest.
    out = f"memory://report-{uuid.uuid4().hex[:8]}/out"
    second = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for name, millis in (("z-first", 100), ("a-second", 900)):
        with ReportWriter(out, name) as report:
            report.add(outcome(1))
            report.close(finished_at=second.replace(microsecond=millis * 1000))
    assert [r.flow_run_name for r in read_reports(out)] == ["z-first", "a-second"]
    (latest,) = read_reports(out, latest_only=True)
    assert latest.flow_run_name == "a-second"
    assert latest.finished_at == second.replace(microsecond=900_000)


def test_reports_named_to_the_second_are_still_read_and_ordered() -> None:
    # Reports written before names carried milliseconds sit beside newer ones.
    out = f"memory://report-{uuid.uuid4().hex[:8]}/out"
    with fsspec.open(f"{out}/_runs/20260102T030406Z-old.jsonl", "wt") as handle:
        handle.write(outcome(1).model_dump_json() + "\n")
    with ReportWriter(out, "new") as report:
        report.add(outcome(1))
        report.close(finished_at=datetime(2026, 1, 2, 3, 4, 5, 999_000, tzinfo=UTC))
    runs = read_reports(out)
    assert [r.flow_run_name for r in runs] == ["new", "old"]
    assert runs[1].finished_at == datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)
    assert report_name("x").endswith("Z-x") and "." in report_name("x")
