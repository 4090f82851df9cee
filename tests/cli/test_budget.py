"""The budget cap: a run over it starts nothing, and no submit ever takes the spend past it.

Proven at the emulator's submission counter, not by the flow's word.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import explain, pika, process_env, report_lines, write_manifest


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.timeout(120)
def test_run_over_the_cap_starts_nothing(make_emulator: Callable[..., Any], tmp_path: Path) -> None:
    emu = make_emulator(runners=4, job_seconds=0.2, fps=4)
    manifest = write_manifest(tmp_path, [f"r{n},images/{n}.png,zoom in {n}" for n in range(5)])
    out = tmp_path / "out"
    env = process_env(emu)

    estimate = pika("estimate", str(manifest), "--max-spend-usd", "0.50", env=env)
    assert estimate.returncode == 1, explain(estimate)
    assert "Over --max-spend-usd $0.50" in estimate.stdout

    done = pika("run", str(manifest), "--out", str(out), "--max-spend-usd", "0.50", env=env)
    assert done.returncode == 1, explain(done)
    stats = emu.stats()
    assert (stats["submissions"], stats["uploads"]) == (0, 0)
    assert "the 5 rows to submit cost $1.00" in done.stderr and "$0.50" in done.stderr
    lines = report_lines(out)
    assert len(lines) == 5
    assert all(line["status"] == "failed" and line["action"] == "refused" for line in lines)
    assert all("not started" in line["error"] for line in lines)
    assert not list(out.glob("*.mp4")) and not list(out.glob("*.json"))


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.timeout(120)
def test_expired_rows_resubmitted_only_within_the_cap(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    """The plan counts re-attached rows as free, so the up-front check passes; their results
    have expired, so both must be submitted again, and only one fits the cap."""
    emu = make_emulator(runners=4, job_seconds=0.1, fps=4)
    manifest = write_manifest(tmp_path, ["a,images/0.png,zoom in", "b,images/1.png,pan left"])
    out = tmp_path / "out"
    env = process_env(emu)
    first = pika("run", str(manifest), "--out", str(out), env=env)
    assert first.returncode == 0, explain(first)
    assert emu.stats()["submissions"] == 2
    for row_id in "ab":
        (out / f"{row_id}.mp4").unlink()
    requests = [json.loads((out / f"{r}.json").read_text())["request"] for r in "ab"]
    assert emu.expire(*(r["request_id"] for r in requests))  # both results gone at fal
    assert [httpx.get(r["response_url"]).status_code for r in requests] == [404, 404]

    estimate = pika("estimate", str(manifest), "--out", str(out), "--json", env=env)
    planned = json.loads(estimate.stdout)
    assert (planned["to_reattach"], planned["to_submit"], planned["submit_usd"]) == (2, 0, 0.0)

    capped = pika("run", str(manifest), "--out", str(out), "--max-spend-usd", "0.20", env=env)
    assert capped.returncode == 1, explain(capped)
    assert emu.stats()["submissions"] == 3, "a submit went past the cap"
    lines = {line["id"]: line for line in report_lines(out)}
    statuses = sorted((line["status"], line["action"]) for line in lines.values())
    assert statuses == [("failed", "resubmit-expired"), ("succeeded", "resubmit-expired")]
    refused = next(line for line in lines.values() if line["status"] == "failed")
    assert "not submitted" in refused["error"] and "over the cap of $0.20" in refused["error"]
    assert refused["cost_usd"] == 0.0

    runs = json.loads(pika("report", str(out), "--all", "--json", env=env).stdout)
    assert [run["spend_usd"] for run in runs["runs"]] == [0.4, 0.2]
    assert runs["spend_usd"] == 0.6


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.timeout(120)
def test_a_cap_that_fits_the_run_submits_every_row(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    """The up-front check compares the run's price with the cap once, before any money is
    reserved; the rows' own reservations must not count against it a second time."""
    emu = make_emulator(runners=4, job_seconds=0.1, fps=4)
    manifest = write_manifest(tmp_path, [f"r{n},images/{n}.png,zoom in {n}" for n in range(4)])
    out = tmp_path / "out"
    env = process_env(emu)

    done = pika("run", str(manifest), "--out", str(out), "--max-spend-usd", "0.80", env=env)
    assert done.returncode == 0, explain(done)
    assert emu.stats()["submissions"] == 4
    lines = report_lines(out)
    assert sorted(line["status"] for line in lines) == ["succeeded"] * 4
    assert sum(line["cost_usd"] for line in lines) == pytest.approx(0.80)
    assert len(list(out.glob("*.mp4"))) == 4


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.timeout(120)
def test_the_estimate_judges_the_cap_as_the_run_does(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    """The run's check before paying reads no image, so a new row whose image is missing
    is priced with the others: the estimate says the run is refused, and it is."""
    emu = make_emulator(runners=4, job_seconds=0.1, fps=4)
    manifest = write_manifest(
        tmp_path, ["a,images/0.png,zoom in", "b,images/1.png,pan left", "d,images/gone.png,tilt"]
    )
    out = tmp_path / "out"
    env = process_env(emu)
    capped = ("--out", str(out), "--max-spend-usd", "0.40")

    estimate = pika("estimate", str(manifest), *capped, "--json", env=env)
    planned = json.loads(estimate.stdout)
    assert (planned["submit_usd"], planned["checked_usd"]) == (0.4, 0.6), explain(estimate)
    assert planned["within_budget"] is False

    done = pika("run", str(manifest), *capped, env=env)
    assert done.returncode == 1, explain(done)
    assert "the 3 rows to submit cost $0.60" in done.stderr
    assert emu.stats()["submissions"] == 0
