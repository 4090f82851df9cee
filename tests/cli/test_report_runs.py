"""``pika-tasks report --all``: every run once, a scale-out's rows and spend included once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import explain, pika, process_env

from pika_tasks.pipeline import ReportWriter, RowOutcome
from pika_tasks.shards import merged_run_name, shard_run_name

pytestmark = pytest.mark.timeout(60)


START = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def write_report(out: Path, run_name: str, rows: dict[str, float], minute: int) -> None:
    # Each report ends at its own minute: reports written within one millisecond
    # would otherwise be ordered by name, not by when they were written.
    with ReportWriter(str(out), run_name) as report:
        for number, (row_id, cost) in enumerate(rows.items(), 1):
            report.add(
                RowOutcome(
                    id=row_id,
                    row_number=number,
                    status="succeeded",
                    action="submit",
                    cost_usd=cost,
                )
            )
        report.close(finished_at=START + timedelta(minutes=minute))


def test_a_scale_out_is_counted_once_beside_a_plain_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_report(out, "calm-owl", {"x": 0.45}, minute=0)
    write_report(out, shard_run_name("brave-fox", 0), {"a": 0.2, "b": 0.2}, minute=1)
    write_report(out, shard_run_name("brave-fox", 1), {"c": 0.2}, minute=2)
    write_report(out, merged_run_name("brave-fox"), {"a": 0.2, "b": 0.2, "c": 0.2}, minute=3)

    done = pika("report", str(out), "--all", "--json", env=process_env())
    assert done.returncode == 0, explain(done)
    found = json.loads(done.stdout)
    assert [run["flow_run_name"] for run in found["runs"]] == ["calm-owl", "brave-fox-merged"]
    assert found["spend_usd"] == pytest.approx(1.05)

    table = pika("report", str(out), "--all", env=process_env(COLUMNS="200"))
    assert table.returncode == 0, explain(table)
    assert "$1.05" in table.stdout and "shard" not in table.stdout
