"""``pika-tasks run`` and ``report`` as a user runs them: a real process against the emulator,
checked by exit code, output, files and the emulator's counters."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import explain, pika, process_env, write_manifest

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.timeout(180)]


def test_run_summary_report_and_estimate_of_what_is_left(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    emu = make_emulator(runners=4, job_seconds=0.2, fps=4)
    manifest = write_manifest(
        tmp_path,
        [
            "a,images/0.png,zoom in,720p",
            "b,images/1.png,pan left,720p",
            "c,images/2.png,orbit,1080p",
            "gone,images/missing.png,tilt up,720p",
            "huge,images/3.png,dolly out,4k",
        ],
        header="id,image,prompt,resolution",
    )
    out = tmp_path / "out"
    env = process_env(emu)

    done = pika("run", str(manifest), "--out", str(out), env=env)
    assert done.returncode == 1, explain(done)
    for row_id in "abc":
        assert (out / f"{row_id}.mp4").stat().st_size > 0
        assert json.loads((out / f"{row_id}.json").read_text())["state"] == "succeeded"
    assert not (out / "gone.mp4").exists() and not (out / "huge.mp4").exists()
    assert emu.stats()["submissions"] == 3
    # The summary: rows, succeeded, failed, skipped, submitted, spend at list prices.
    summary = next(line for line in done.stdout.splitlines() if "$0.85" in line)
    cells = [cell.strip() for cell in summary.split("│") if cell.strip()]
    assert cells == ["5", "3", "2", "0", "3", "$0.85"]
    assert "Failed rows" in done.stdout
    assert "field 'image'" in done.stdout and "missing.png" in done.stdout
    assert "'4k' is not one of 720p, 1080p" in done.stdout
    assert "Report: " in done.stdout and "_runs" in done.stdout
    # The live display's last state, printed once because stderr is not a terminal.
    assert "done 3 · failed 2 · left 0" in done.stderr
    assert "spend $0.85" in done.stderr

    shown = pika("report", str(out), env=env)
    assert shown.returncode == 0, explain(shown)
    assert "Latest run" in shown.stdout and "$0.85" in shown.stdout
    assert "missing.png" in shown.stdout and "'4k'" in shown.stdout

    as_json = pika("report", str(out), "--json", env=env)
    assert as_json.returncode == 0, explain(as_json)
    run = json.loads(as_json.stdout)["runs"][0]
    assert (run["succeeded"], run["failed"], run["submitted"], run["spend_usd"]) == (3, 2, 3, 0.85)
    reasons = {row["row_number"]: row["error"] for row in run["rows"] if row["status"] == "failed"}
    assert "missing.png" in reasons[4]
    assert "row 5, field 'resolution'" in reasons[5]

    left = pika("estimate", str(manifest), "--out", str(out), "--json", env=env)
    assert left.returncode == 1, explain(left)  # two rows are still invalid
    planned = json.loads(left.stdout)
    assert (planned["to_skip"], planned["skip_usd"], planned["to_submit"]) == (3, 0.85, 0)
    assert [problem["row_number"] for problem in planned["invalid"]] == [4, 5]
    stats = emu.stats()
    assert (stats["submissions"], stats["uploads"]) == (3, 0)


def test_missing_key_without_local_is_a_usage_error(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, ["a,images/0.png,zoom in"])
    done = pika("run", str(manifest), "--out", str(tmp_path / "out"), env=process_env())
    assert done.returncode == 2, explain(done)
    assert "FAL_KEY" in done.stderr and "--local" in done.stderr
    assert not (tmp_path / "out").exists()


def in_process(*arguments: str) -> Any:
    """``pika-tasks ARGUMENTS`` run in this process (the same Typer app, no interpreter start)."""
    from typer.testing import CliRunner

    from pika_tasks.cli import app

    return CliRunner().invoke(
        app, list(arguments), prog_name="pika-tasks", env={"FAL_KEY": "unused"}
    )


def test_bad_option_values_are_usage_errors(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, ["a,images/0.png,zoom in"])
    run = ["run", str(manifest), "--out", str(tmp_path / "out")]
    cases = [
        (run, ["--resolution", "4k"], "--resolution must be 720p or 1080p"),
        (run, ["--max-spend-usd", "-1"], "--max-spend-usd"),
        (["estimate", str(manifest)], ["--storage-options", "[1]"], "must be a JSON object"),
    ]
    for command, arguments, message in cases:
        done = in_process(*command, *arguments)
        assert done.exit_code == 2, done.output
        assert message in done.stderr, done.output
    assert not (tmp_path / "out").exists()


def test_unreadable_manifest_and_output_are_usage_errors(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    for command in (["run", missing, "--out", str(tmp_path / "out")], ["estimate", missing]):
        done = in_process(*command)
        assert done.exit_code == 2, done.output
        assert "nope.csv" in done.stderr
    nothing = in_process("report", str(tmp_path / "never-ran"))
    assert nothing.exit_code == 2, nothing.output
    assert "no run reports" in nothing.stderr


def test_every_command_has_help_with_examples() -> None:
    # In process: the same Typer app, without five interpreter start-ups.
    from typer.testing import CliRunner

    from pika_tasks.cli import app

    runner = CliRunner()
    for command in ([], ["run"], ["estimate"], ["report"], ["emulator"]):
        shown = runner.invoke(
            app, [*command, "--help"], prog_name="pika-tasks", env={"COLUMNS": "200"}
        )
        assert shown.exit_code == 0, shown.output
        assert "Examples" in shown.output, command
        assert "pika-tasks " in shown.output
    assert "--max-spend-usd" in runner.invoke(app, ["run", "--help"]).output
