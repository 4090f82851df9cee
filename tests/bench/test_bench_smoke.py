"""The benchmark harness in --quick mode: every scenario runs and writes sane figures.

Runs ``python -m bench --quick`` in a subprocess (about two minutes on two
cores: a Prefect server, then about twenty short processes; the six
``pika-tasks run`` of issue 12's scenarios take half of it, about 10 s each
with their emulator and read-back) so that the harness cannot rot unnoticed.  It checks the
shape and sanity of the results, not the targets: quick sizes are too small
for the targets to mean anything.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.targets import ISSUE_12_METRICS

pytest.importorskip("psutil")
pytest.importorskip("cryptography")

ROOT = Path(__file__).resolve().parents[2]
HAS_FAL = importlib.util.find_spec("fal_client") is not None
VARIANTS = ("flow", "pipeline", "client", "fal") if HAS_FAL else ("flow", "pipeline", "client")
FLOOR = "flow-floor"  # Prefect's own cost, reported apart from the variants

pytestmark = [pytest.mark.slow, pytest.mark.timeout(330)]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON of one quick run (fal-client's variant only when it is installed)."""
    folder = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FAL_", "PIKA_"))}
    command = [
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--variants",
        ",".join((*VARIANTS, FLOOR)),
        "--results-dir",
        str(folder / "results"),
        "--work-dir",
        str(folder / "work"),
    ]
    run = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=320, check=False
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    report = (folder / "results" / "latest.md").read_text()
    assert report.startswith("# pika-tasks benchmark") and "## Issue 12 targets" in report
    data: dict[str, Any] = json.loads((folder / "results" / "latest.json").read_text())
    return data


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and value > 0


def test_meta_and_targets(results: dict[str, Any]) -> None:
    assert results["errors"] == {}
    meta = results["meta"]
    assert meta["options"]["quick"] is True
    assert meta["machine"]["nproc"] >= 1 and meta["machine"]["python"]
    assert positive(meta["duration_s"])
    assert {t["scenario"] for t in results["targets"]} == {
        "throughput",
        "memory",
        "transfer",
        "scale",
        "workload",
        "first_submit",
        "cli_scale",
    }
    for target in results["targets"]:
        assert set(target) == {"scenario", "subject", "metric", "target", "value", "met", "issue"}
        assert target["value"] is not None and isinstance(target["met"], bool)
        assert target["issue"] in (7, 12)
    # Every metric of issue 12's table is judged.
    judged = {(t["scenario"], t["metric"]) for t in results["targets"] if t["issue"] == 12}
    assert set(ISSUE_12_METRICS) <= judged


def test_throughput(results: dict[str, Any]) -> None:
    section = results["throughput"]
    assert positive(section["ideal_s"])
    assert set(section["variants"]) == set(VARIANTS)
    for name, figures in section["variants"].items():
        assert figures["rows_lost"] == 0 and figures["errors"] == 0, name
        assert figures["submissions"] == section["rows"], name
        for field in ("makespan_s", "makespan_ratio", "queue_span_s", "cpu_s", "peak_rss_mb"):
            assert positive(figures[field]), (name, field)
        # submit + at least one way of learning completion + result, per job
        assert figures["queue_requests_per_job"] >= 3, name
        assert figures["queue_requests"]["submit"] == section["rows"], name
        assert figures["detection_p95_ms"] >= figures["detection_p50_ms"] >= 0, name
        assert figures["other_cpu_s"] >= 0, name
    assert positive(section["variants"]["flow"]["prefect_server_peak_rss_mb"])
    floor = section["flow_floor"]
    assert floor["rows_ok"] == section["rows"] and floor["errors"] == 0
    assert positive(floor["first_task_s"]) and positive(floor["cpu_per_row_ms"])
    share = section["prefect_share"]
    assert share["prefect_start_s"] == floor["first_task_s"]
    assert positive(share["makespan_less_start_ratio"])
    assert share["makespan_less_start_ratio"] < section["variants"]["flow"]["makespan_ratio"]
    if HAS_FAL:
        # fal-client polls; ours listens to the status stream.
        assert "status" in section["variants"]["fal"]["queue_requests"]
        assert "status_stream" in section["variants"]["client"]["queue_requests"]


def test_memory(results: dict[str, Any]) -> None:
    section = results["memory"]
    assert section["variants"]
    for figures in section["variants"].values():
        assert positive(figures["tiny_peak_rss_mb"]) and positive(figures["large_peak_rss_mb"])
        assert figures["delta_mb"] is not None and figures["rows_lost"] == 0
        assert figures["large_bytes_written"] >= section["rows"] * section["video_mb"] * 2**20


def test_transfer(results: dict[str, Any]) -> None:
    section = results["transfer"]
    assert set(section["destinations"]) == {"local", "s3"}
    for figures in section["destinations"].values():
        assert positive(figures["ours_mb_s"]) and positive(figures["httpx_mb_s"])
        assert positive(figures["ratio"])
        expected = section["files"] * section["repeats"]
        assert figures["ours"]["bytes"] == figures["httpx"]["bytes"] > expected
        assert figures["httpx+sha256"]["bytes"] == figures["httpx"]["bytes"]
        assert positive(figures["httpx_sha256_mb_s"]) and positive(figures["ratio_vs_checked"])


def test_scale(results: dict[str, Any]) -> None:
    section = results["scale"]
    assert [run["rows"] for run in section["runs"]] == [3, 6]
    for run in section["runs"]:
        assert run["rows_lost"] == 0 and run["rows_ok"] == run["rows"]
        assert positive(run["wall_s"])
        assert all(positive(run["peak_rss_mb"][name]) for name in ("flow", "prefect_server"))
        assert run["log_errors"]["worker"]["error_lines"] >= 0
    assert positive(section["flow_rss_growth"])


def whole_run(run: dict[str, Any]) -> None:
    """A ``pika-tasks run`` that went to its end with every row done."""
    assert run["returncode"] == 0 and not run["timed_out"] and not run["stopped_at_first_submit"]
    assert run["rows_lost"] == 0 and run["rows_written"] == run["rows"] == run["submissions"]
    for field in ("wall_s", "flow_s", "first_submit_s", "cpu_s", "cpu_per_row_ms", "peak_rss_mb"):
        assert positive(run[field]), field
    # The flow run is part of the command's life; the first submit comes before its end.
    assert run["flow_s"] < run["wall_s"] and run["first_submit_s"] < run["wall_s"]
    assert positive(run["peak_hwm_mb"])
    assert run["flow_runs"] >= 1
    assert sum(counts["error_lines"] for counts in run["log_errors"].values()) == 0


def test_workload(results: dict[str, Any]) -> None:
    section = results["workload"]
    photos = section["photos"]
    assert photos["count"] == photos["jpeg"] + photos["png"] and photos["jpeg"] and photos["png"]
    assert 1.0 <= photos["min_mb"] <= photos["mean_mb"] <= photos["max_mb"] < 2.0
    assert set(section["variants"]) == {"s3"}
    for figures in section["variants"].values():
        whole_run(figures)
        assert positive(figures["flow_ratio"]) and positive(figures["wall_ratio"])


def test_first_submit(results: dict[str, Any]) -> None:
    section = results["first_submit"]
    runs = section["runs"]
    assert [run["rows"] for run in runs] == [2, 6]
    for run in runs:
        assert run["stopped_at_first_submit"] and not run["timed_out"], run["rows"]
        assert 0 < run["first_submit_s"] < run["wall_s"], run["rows"]
        assert 1 <= run["submissions"] <= run["rows"]
        assert positive(run["cpu_at_first_submit_s"]) and positive(run["peak_rss_mb"])
        # Stopped runs neither finish their rows nor read back.
        assert run["rows_lost"] is None and run["prefect_events"] is None
    assert runs[0]["vs_smallest"] == 1.0
    assert section["growth"] == runs[-1]["vs_smallest"] and positive(section["growth"])


def test_cli_scale(results: dict[str, Any]) -> None:
    section = results["cli_scale"]
    runs = section["runs"]
    assert [run["rows"] for run in runs] == [2, 4]
    for run in runs:
        whole_run(run)
        # At least one state event per task run, three task runs per row.
        assert run["prefect_events"] >= 3 * run["rows"]
        assert run["prefect_events"] == sum(run["prefect_events_by_name"].values())
        assert run["prefect_events_sqlite"] == run["prefect_events"]
        assert run["prefect_logs"] == sum(run["prefect_logs_by_level"].values())
        writes = (run["prefect_events"] + run["prefect_logs"]) / run["rows"]
        assert run["prefect_writes_per_row"] == round(writes, 2)
    assert positive(section["rss_growth"])


def test_large_videos(results: dict[str, Any]) -> None:
    section = results["large_videos"]
    assert set(section["variants"]) == {"flow", "client"}
    for name, figures in section["variants"].items():
        assert figures["rows_lost"] == 0, name
        for field in ("makespan_s", "makespan_ratio", "queue_span_s", "cpu_per_row_ms"):
            assert positive(figures[field]), (name, field)
        # Every video, padded to the asked size, was served once.
        assert figures["bytes_served"] >= section["rows"] * section["video_bytes"], name
    assert positive(section["variants"]["flow"]["vs_client"])
