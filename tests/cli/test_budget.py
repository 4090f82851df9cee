"""The budget cap: a run over it starts nothing, and no submit ever takes the spend past it.

Proven at the emulator's submission counter, not by the flow's word.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_support import cli_env, explain, pika, report_lines, write_manifest

from pika_tasks.budget import Budget, BudgetExceededError, total_usd
from pika_tasks.errors import ServerError, SubmitOutcomeUnknownError


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.timeout(120)
def test_run_over_the_cap_starts_nothing(make_emulator: Callable[..., Any], tmp_path: Path) -> None:
    emu = make_emulator(runners=4, job_seconds=0.2, fps=4)
    manifest = write_manifest(tmp_path, [f"r{n},images/{n}.png,zoom in {n}" for n in range(5)])
    out = tmp_path / "out"
    env = cli_env(emu)

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
    emu = make_emulator(runners=4, job_seconds=0.1, fps=4, result_ttl_seconds=1.0)
    manifest = write_manifest(tmp_path, ["a,images/0.png,zoom in", "b,images/1.png,pan left"])
    out = tmp_path / "out"
    env = cli_env(emu)
    first = pika("run", str(manifest), "--out", str(out), env=env)
    assert first.returncode == 0, explain(first)
    assert emu.stats()["submissions"] == 2
    for row_id in "ab":
        (out / f"{row_id}.mp4").unlink()
    # Wait (bounded) until the emulator has expired both results.
    urls = [json.loads((out / f"{r}.json").read_text())["request"]["response_url"] for r in "ab"]
    deadline = time.monotonic() + 30
    while any(httpx.get(url).status_code != 404 for url in urls):
        assert time.monotonic() < deadline, "the results never expired"
        time.sleep(0.1)

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


async def test_concurrent_holds_never_pass_the_cap() -> None:
    budget = Budget(limit_usd=0.50)
    admitted: list[int] = []

    async def submit(n: int) -> None:
        with budget.hold(0.20, f"r{n}"):
            await asyncio.sleep(0.01)  # the submit's network round trip
            admitted.append(n)

    results = await asyncio.gather(*(submit(n) for n in range(20)), return_exceptions=True)
    assert len(admitted) == 2
    refused = [r for r in results if isinstance(r, BudgetExceededError)]
    assert len(refused) == 18
    assert budget.spent_usd == pytest.approx(0.40)


def test_holds_from_many_threads_never_pass_the_cap() -> None:
    budget = Budget(limit_usd=1.00)
    start = threading.Barrier(16)

    def reserve(n: int) -> bool:
        start.wait()
        try:
            budget.reserve(0.20, f"r{n}")
        except BudgetExceededError:
            return False
        return True

    with ThreadPoolExecutor(16) as pool:
        admitted = sum(pool.map(reserve, range(16)))
    assert admitted == 5
    assert budget.spent_usd == 1.0


def test_refused_submits_give_the_money_back_lost_answers_keep_it() -> None:
    budget = Budget(limit_usd=0.20)
    keep = (SubmitOutcomeUnknownError,)
    with pytest.raises(ServerError), budget.hold(0.20, "a", keep_on=keep):
        raise ServerError("runner_scheduling_failure", status_code=503)
    assert budget.spent_usd == 0.0
    with pytest.raises(SubmitOutcomeUnknownError), budget.hold(0.20, "b", keep_on=keep):
        raise SubmitOutcomeUnknownError("the answer was lost")
    assert budget.spent_usd == 0.20
    with pytest.raises(BudgetExceededError, match=r"c: not submitted: .* over the cap of \$0.20"):
        budget.reserve(0.01, "c")


def test_exact_sums_fit_an_exact_cap() -> None:
    assert total_usd([0.2, 0.2, 0.2]) == 0.6
    budget = Budget(limit_usd=0.6)
    for n in range(3):
        budget.reserve(0.2, f"r{n}")
    assert not budget.allows(0.01)
