"""What ``pika-tasks run`` prints: by default the display and one line per row, no run log
lines; ``-v`` adds Prefect's lines; ``-q`` the summary only. The run's logs reach the Prefect
API in every mode, failures that stop a run are always shown, exit codes stay."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from support import explain, pika, process_env, wait_until_async, write_manifest

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.timeout(300)]

ROWS = ["a,images/0.png,zoom in", "b,images/1.png,pan left", "gone,images/missing.png,tilt"]

# What Prefect's console handler prints for a run's records ("| INFO | Task run 'x' - ...").
RUN_LOG_MARKS = ("Task run '", "Flow run '", "| INFO ", "| DEBUG ")


def run_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(m in line for m in RUN_LOG_MARKS)]


def row_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line[:2] in ("✓ ", "✗ ", "· ")]


def summary_row(stdout: str) -> list[str]:
    summary = next(line for line in stdout.splitlines() if "$0.40" in line)
    return [cell.strip() for cell in summary.split("│") if cell.strip()]


async def api_logs(flow_run_id: UUID) -> list[str]:
    """The run's log messages as the Prefect API has them (they arrive in batches)."""

    async def stored() -> list[str]:
        async with get_client() as client:
            logs = await client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200
            )
        messages = [log.message for log in logs]
        return messages if any("Finished in state" in m for m in messages) else []

    return await wait_until_async(stored, "the run's logs in the Prefect API", 60, interval=0.2)


def run(manifest: Path, out: Path, env: dict[str, str], *flags: str) -> Any:
    done: subprocess.CompletedProcess[str] = pika(
        "run", str(manifest), "--out", str(out), *flags, env=env
    )
    return done


async def test_default_verbose_and_quiet_output_with_the_logs_in_prefect(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    emu = make_emulator(runners=4, job_seconds=0.2, fps=4)
    manifest = write_manifest(tmp_path, ROWS)
    env = process_env(emu)

    default = run(manifest, tmp_path / "default", env)
    assert default.returncode == 1, explain(default)  # a row failed: exit code as before
    assert run_lines(default.stderr) == [], explain(default)
    lines = row_lines(default.stderr)
    assert sorted(line.split()[1] for line in lines) == ["a", "b", "gone"], explain(default)
    assert any(line.startswith("✗ gone failed: ") and "missing.png" in line for line in lines)
    assert "done 2 · failed 1 · left 0" in default.stderr
    assert "at fal: queued 0 · running 0 · downloading 0" in default.stderr
    assert summary_row(default.stdout) == ["3", "2", "1", "0", "2", "$0.40"]
    # The run's own failure (rows failed) is still said.
    assert "The run failed:" in default.stderr

    verbose = run(manifest, tmp_path / "verbose", env, "-v")
    assert verbose.returncode == 1, explain(verbose)
    shown = run_lines(verbose.stderr)
    assert any("Task run 'wait a'" in line for line in shown), explain(verbose)
    assert any("Flow run" in line and "Finished in state" in line for line in shown)
    assert len(row_lines(verbose.stderr)) == 3

    quiet = run(manifest, tmp_path / "quiet", env, "--quiet")
    assert quiet.returncode == 1, explain(quiet)
    assert summary_row(quiet.stdout) == ["3", "2", "1", "0", "2", "$0.40"]
    assert "missing.png" in quiet.stdout  # the failed rows' table is part of the summary
    # Nothing on the terminal but the error that ended the run Failed.
    assert [line for line in quiet.stderr.splitlines() if line.strip()] == [
        line for line in quiet.stderr.splitlines() if line.startswith("The run failed:")
    ], explain(quiet)
    assert "The run failed:" in quiet.stderr

    # The quiet run's logs are in Prefect all the same, task runs' lines included.
    record = json.loads((tmp_path / "quiet" / "a.json").read_text())
    messages = await api_logs(UUID(record["flow_run_id"]))
    assert any("rows in" in m and "3 new" in m for m in messages), messages
    assert any("completed (inference" in m for m in messages), messages
    # A completed task run's "Finished" line is not sent: three API writes a row saved.
    assert not [m for m in messages if m.startswith("Finished in state Completed()")], messages
    assert any(m.startswith("Beginning flow run") for m in messages), messages


def test_quiet_still_shows_a_refused_run_and_usage_errors(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    emu = make_emulator(runners=2, job_seconds=0.2, fps=4)
    manifest = write_manifest(tmp_path, ROWS[:2])
    env = process_env(emu)

    refused = run(manifest, tmp_path / "out", env, "-q", "--max-spend-usd", "0.1")
    assert refused.returncode == 1, explain(refused)
    assert "The run failed:" in refused.stderr and "0.1" in refused.stderr, explain(refused)
    assert emu.stats()["submissions"] == 0

    both = run(manifest, tmp_path / "out", env, "-q", "-v")
    assert both.returncode == 2, explain(both)
    assert "--verbose and --quiet" in both.stderr
