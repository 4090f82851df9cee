"""End to end on a real Prefect server: `prefect deploy`, two process workers, a global
concurrency limit, scale-out shards, cancellation, and the scheduled inbox, all against
the emulator over loopback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import LIMIT, deploy, run_deployment, start_workers, wait_for_state
from prefect_stack import PrefectStack
from support import probe_video, wait_until, write_manifest

from pika_tasks.keys import artifact_key
from pika_tasks.pipeline import report_urls
from pika_tasks.records import OutputLocation

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]


def test_scale_out_on_two_workers_stays_under_the_global_limit(
    stack: PrefectStack, make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    # The emulated account could run 8 at once; the Prefect limit must hold us to 2.
    emu = make_emulator(runners=8, job_seconds=0.5, fps=4)
    deploy(stack, emu, tmp_path)
    start_workers(stack, 2)
    rows = [f"r{n},images/{n % 8}.png,zoom in {n}" for n in range(8)]
    manifest = write_manifest(tmp_path, rows)
    out = tmp_path / "out"

    run_id = run_deployment(
        stack,
        "image-to-video-scale-out/scale-out",
        manifest=str(manifest),
        output=str(out),
        shard_size=2,
        # $1.60 of rows under a $2.00 cap for the whole run: shared out, not $2.00 a shard.
        shard_parameters={"limits": {"max_concurrency": 4, "max_spend_usd": 2.0}},
    )
    assert wait_for_state(stack, run_id) == "COMPLETED", stack.tail()

    stats = emu.stats()
    assert stats["submissions"] == len(rows)
    assert 1 <= stats["max_in_progress"] <= LIMIT
    for n in range(len(rows)):
        assert probe_video((out / f"r{n}.mp4").read_bytes())["codec"] == "h264"
    merged = [u for u in report_urls(str(out)) if u.endswith("-merged.jsonl")]
    assert len(merged) == 1
    lines = [json.loads(line) for line in Path(merged[0]).read_text().splitlines()]
    assert sorted(line["row_number"] for line in lines) == list(range(1, len(rows) + 1))
    assert {line["status"] for line in lines} == {"succeeded"}
    shard_runs = stack.api(
        "POST",
        "/flow_runs/filter",
        json={"flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}},
    )
    # Four shards, each its own deployment run, plus nothing lost.
    shard_ids = [r["id"] for r in shard_runs if "-shard-" in r["name"]]
    assert len(shard_ids) == 4
    shard_limits = [r["parameters"]["limits"] for r in shard_runs if "-shard-" in r["name"]]
    assert [limits["max_spend_usd"] for limits in shard_limits] == [0.5] * 4
    assert {limits["max_concurrency"] for limits in shard_limits} == {4}

    # The output's keyed artifacts follow the whole run: the parent's merged table and
    # summary hold them; each shard's own artifacts are on its run page, without a key.
    artifacts = stack.api(
        "POST",
        "/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [run_id, *shard_ids]}}},
    )
    keyed = {a["key"]: a for a in artifacts if a["key"] is not None}
    summary_key, rows_key = artifact_key("summary", str(out)), artifact_key("rows", str(out))
    assert set(keyed) == {summary_key, rows_key}, sorted(keyed)
    assert {a["flow_run_id"] for a in keyed.values()} == {run_id}
    summary = keyed[summary_key]["data"]
    assert "# Image-to-video scale-out: 4 shards" in summary
    assert f"| {len(rows)} | 0 | 0 | 0 | {len(rows)} |" in summary, summary[:600]
    assert "![contact sheet](data:image/jpeg;base64," in summary
    table = keyed[rows_key]["data"]
    table = json.loads(table) if isinstance(table, str) else table
    assert sorted(row["id"] for row in table) == [f"r{n}" for n in range(len(rows))]
    per_shard = [a for a in artifacts if a["flow_run_id"] in shard_ids]
    assert {a["type"] for a in per_shard} >= {"markdown", "table", "progress"}
    assert {a["flow_run_id"] for a in per_shard} == set(shard_ids)


def test_cancelling_a_run_cancels_its_remote_requests(
    stack: PrefectStack, make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    emu = make_emulator(runners=1, job_seconds=0.2, fps=4)
    # No job starts until the run is cancelled: however long the cancel takes to reach
    # the run's process, the rows in flight are still waiting at fal.
    emu.pause()
    deploy(stack, emu, tmp_path)
    start_workers(stack, 1)
    rows = [f"r{n},images/{n}.png,pan left {n}" for n in range(3)]
    manifest = write_manifest(tmp_path, rows)
    out = tmp_path / "out"
    location = OutputLocation(str(out))

    run_id = run_deployment(
        stack, "image-to-video-batch/batch", manifest=str(manifest), output=str(out)
    )

    def in_flight() -> list[str]:
        found = [location.load(f"r{n}") for n in range(3)]
        return [r.id for r in found if r is not None and r.state == "submitted"]

    # The global limit lets LIMIT rows be in flight at once; the third waits for a slot.
    submitted = wait_until(lambda: len(in_flight()) == LIMIT and in_flight(), "rows in flight")
    stack.cli("flow-run", "cancel", run_id)
    assert wait_for_state(stack, run_id, limit=120) == "CANCELLED"

    def recorded_cancelled() -> bool:
        records = [location.load(row_id) for row_id in submitted]
        return {r.state for r in records if r} == {"cancelled"}

    # The hook cancels each request at fal, then records its row; its report comes last.
    try:
        wait_until(
            lambda: (
                emu.stats()["cancellations"] >= LIMIT
                and recorded_cancelled()
                and report_urls(str(out))
            ),
            "cancel calls at the emulator, the rows recorded cancelled and the report",
            timeout=30,
        )
    except AssertionError:
        raise AssertionError(f"{emu.stats()}\n{stack.tail(200)}") from None
    report = report_urls(str(out))[-1]
    lines = [json.loads(line) for line in Path(report).read_text().splitlines()]
    assert {line["id"]: line["status"] for line in lines} == dict.fromkeys(submitted, "cancelled")

    # A later run of the same manifest submits the cancelled rows again.
    emu.resume()
    again = run_deployment(
        stack, "image-to-video-batch/batch", manifest=str(manifest), output=str(out)
    )
    assert wait_for_state(stack, again) == "COMPLETED", stack.tail()
    assert emu.stats()["submissions"] == LIMIT + 3
    assert all((out / f"r{n}.mp4").exists() for n in range(3))


def test_scheduled_inbox_processes_new_manifests_once(
    stack: PrefectStack, make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    emu = make_emulator(runners=2, job_seconds=0.2, fps=4)
    deploy(stack, emu, tmp_path)
    start_workers(stack, 1)
    inbox = tmp_path / "inbox"
    write_manifest(inbox, ["a,images/0.png,zoom in", "b,images/1.png,orbit"])
    (inbox / "manifest.csv").rename(inbox / "shoot-1.csv")
    deployment = next(
        d for d in stack.api("POST", "/deployments/filter", json={}) if d["name"] == "inbox"
    )
    assert deployment["schedules"], "the inbox deployment has a cron schedule"
    # A scheduled run may start beside the manual ones below: they queue, one at a time.
    assert deployment["global_concurrency_limit"]["limit"] == 1

    first = run_deployment(stack, "image-to-video-inbox/inbox")
    assert wait_for_state(stack, first) == "COMPLETED", stack.tail()
    assert (tmp_path / "videos" / "shoot-1" / "a.mp4").exists()
    marker = json.loads((inbox / "_processed" / "shoot-1.csv.json").read_text())
    assert marker["result"]["succeeded"] == 2

    second = run_deployment(stack, "image-to-video-inbox/inbox")
    assert wait_for_state(stack, second) == "COMPLETED", stack.tail()
    assert emu.stats()["submissions"] == 2
