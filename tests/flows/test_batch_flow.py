"""The batch flow end to end against the emulator: local, memory and S3 round trips,
resume without paying twice, partial failure, and the Prefect UI artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fsspec
import httpx
import pytest
from prefect.client.orchestration import get_client
from support import (
    KEY,
    png_bytes,
    point_at,
    probe_video,
    report_lines,
    run_batch,
    settled_task_runs,
    write_manifest,
)

from pika_tasks.manifest import RowDefaults
from pika_tasks.pipeline import Location, report_urls

pytestmark = pytest.mark.usefixtures("prefect_harness")


async def test_local_round_trip_with_a_bad_row(queue: Any, tmp_path: Path) -> None:
    manifest = write_manifest(
        tmp_path,
        [
            "a,images/0.png,slow zoom in",
            "b,images/1.png,pan left",
            "c,images/2.png,",  # no prompt and no default: refused
            "d,images/missing.png,orbit",  # image does not exist: refused
        ],
    )
    out = tmp_path / "out"
    state, result = await run_batch(
        str(manifest), str(out), defaults=RowDefaults(resolution="720p")
    )

    assert state.is_failed()
    assert "2 succeeded, 2 failed" in state.message
    assert (result.succeeded, result.failed, result.submitted) == (2, 2, 2)
    assert result.spend_usd == pytest.approx(0.40)
    for row_id in ("a", "b"):
        info = probe_video((out / f"{row_id}.mp4").read_bytes())
        assert (info["width"], info["height"], info["frames"]) == (1280, 720, 5 * 4)
        sidecar = json.loads((out / f"{row_id}.json").read_text())
        assert sidecar["state"] == "succeeded"
        assert sidecar["request"]["request_id"]
        assert sidecar["size"] == (out / f"{row_id}.mp4").stat().st_size
        assert len(sidecar["sha256"]) == 64
    lines = {line["row_number"]: line for line in report_lines(result.report_url)}
    assert lines[3]["status"] == "failed" and "row 3, field 'prompt'" in lines[3]["error"]
    assert lines[4]["status"] == "failed" and "field 'image'" in lines[4]["error"]
    assert {lines[1]["status"], lines[2]["status"]} == {"succeeded"}
    assert not (out / "c.mp4").exists() and not (out / "d.mp4").exists()
    assert queue.stats()["submissions"] == 2


async def test_partial_failure_can_end_completed(queue: Any, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, ["a,images/0.png,zoom in", "b,images/9.png,x"])
    state, result = await run_batch(str(manifest), str(tmp_path / "out"), fail_on_partial=False)
    assert state.is_completed()
    assert (result.succeeded, result.failed) == (1, 1)


async def test_rerun_pays_only_for_what_changed(queue: Any, tmp_path: Path) -> None:
    rows = ["a,images/0.png,zoom in", "b,images/1.png,pan left", "c,images/2.png,orbit"]
    manifest = write_manifest(tmp_path, rows)
    out = tmp_path / "out"
    _, first = await run_batch(str(manifest), str(out))
    assert first.succeeded == 3
    before = (out / "a.mp4").stat().st_mtime_ns

    _, second = await run_batch(str(manifest), str(out))
    assert (second.skipped, second.submitted, second.spend_usd) == (3, 0, 0.0)
    assert queue.stats()["submissions"] == 3
    assert (out / "a.mp4").stat().st_mtime_ns == before

    rows[1] = "b,images/1.png,pan right instead"
    manifest.write_text("id,image,prompt\n" + "\n".join(rows) + "\n")
    _, third = await run_batch(str(manifest), str(out))
    assert (third.skipped, third.submitted, third.succeeded) == (2, 1, 1)
    assert queue.stats()["submissions"] == 4
    assert json.loads((out / "b.json").read_text())["row"]["prompt"] == "pan right instead"
    assert len(report_urls(str(out))) == 3


async def test_changed_image_bytes_regenerate_the_row(queue: Any, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, ["a,images/0.png,zoom in"])
    out = tmp_path / "out"
    await run_batch(str(manifest), str(out))
    (tmp_path / "images" / "0.png").write_bytes(png_bytes(color=(1, 2, 3)))
    _, again = await run_batch(str(manifest), str(out))
    assert again.submitted == 1
    assert queue.stats()["submissions"] == 2


async def test_deleted_video_is_fetched_again_without_paying(queue: Any, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, ["a,images/0.png,zoom in"])
    out = tmp_path / "out"
    await run_batch(str(manifest), str(out))
    (out / "a.mp4").unlink()
    _, again = await run_batch(str(manifest), str(out))
    assert (again.succeeded, again.submitted) == (1, 0)
    assert (out / "a.mp4").exists()
    assert queue.stats()["submissions"] == 1
    line = report_lines(again.report_url)[0]
    assert line["action"] == "reattach"


async def test_expired_result_is_resubmitted_and_reported(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emu = make_emulator(job_seconds=0.1, fps=4)
    point_at(emu, monkeypatch)
    manifest = write_manifest(tmp_path, ["a,images/0.png,zoom in"])
    out = tmp_path / "out"
    await run_batch(str(manifest), str(out))
    (out / "a.mp4").unlink()
    handle = json.loads((out / "a.json").read_text())["request"]
    assert emu.expire(handle["request_id"]) == [handle["request_id"]]
    assert httpx.get(handle["response_url"]).status_code == 404
    _, again = await run_batch(str(manifest), str(out))
    assert (again.succeeded, again.submitted) == (1, 1)
    assert report_lines(again.report_url)[0]["action"] == "resubmit-expired"
    assert emu.stats()["submissions"] == 2


async def test_failed_jobs_are_reported_with_fals_error(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emu = make_emulator(job_seconds=0.1, fps=4, job_failure_rate=1.0)
    point_at(emu, monkeypatch)
    manifest = write_manifest(tmp_path, ["a,images/0.png,zoom in"])
    state, result = await run_batch(str(manifest), str(tmp_path / "out"))
    assert state.is_failed() and result.failed == 1
    line = report_lines(result.report_url)[0]
    assert line["status"] == "failed" and line["error"]
    assert json.loads((tmp_path / "out" / "a.json").read_text())["state"] == "failed"


async def test_memory_round_trip(queue: Any) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/mem-batch/in/img/a.png", png_bytes())
    fs.pipe("/mem-batch/in/m.jsonl", b'{"id": "a", "image": "img/a.png", "prompt": "zoom in"}\n')
    _, result = await run_batch("memory://mem-batch/in/m.jsonl", "memory://mem-batch/out")
    assert result.succeeded == 1
    info = probe_video(fs.cat("/mem-batch/out/a.mp4"))
    assert info["codec"] == "h264"
    assert fs.exists("/mem-batch/out/a.json")


async def test_s3_round_trip(queue: Any, s3_bucket: tuple[str, dict[str, Any]]) -> None:
    bucket, options = s3_bucket
    fs = fsspec.filesystem("s3", **options)
    fs.pipe(f"{bucket}/in/images/a.png", png_bytes())
    fs.pipe(f"{bucket}/in/images/b.png", png_bytes(color=(10, 200, 10)))
    fs.pipe(
        f"{bucket}/in/manifest.csv",
        b"id,image,prompt,duration\na,images/a.png,zoom in,5\nb,images/b.png,pan left,10\n",
    )
    _, result = await run_batch(
        Location(url=f"{bucket}/in/manifest.csv", storage_options=options),
        Location(url=f"{bucket}/out", storage_options=options),
        # moto serves the presigned image URLs on loopback.
        allow_private_image_urls=True,
    )
    assert result.succeeded == 2, report_lines(result.report_url, options)
    info = probe_video(fs.cat(f"{bucket}/out/b.mp4"))
    assert info["frames"] == 10 * 4
    assert fs.exists(f"{bucket}/out/a.json")
    assert len(report_lines(result.report_url, options)) == 2


async def test_artifacts_show_progress_table_and_summary(queue: Any, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, ["a,images/0.png,zoom in", "b,images/1.png,pan left"])
    state, _ = await run_batch(str(manifest), str(tmp_path / "out"))
    async with get_client() as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    kinds = {artifact.type: artifact for artifact in artifacts}
    assert set(kinds) >= {"progress", "table", "markdown"}
    assert kinds["progress"].data == 100.0
    assert "| 2 | 0 | 0 | 0 | 2 |" in str(kinds["markdown"].data)


async def test_key_never_reaches_the_outputs(queue: Any, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, ["a,images/0.png,zoom in", "b,images/9.png,x"])
    out = tmp_path / "out"
    await run_batch(str(manifest), str(out))
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


async def test_task_runs_are_untagged_unless_tags_are_asked_for(queue: Any, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, ["a,images/0.png,zoom in"])
    plain, _ = await run_batch(str(manifest), str(tmp_path / "plain"))
    tagged, _ = await run_batch(str(manifest), str(tmp_path / "tagged"), task_tags=["fal", "media"])

    async def tags_of(state: Any) -> dict[str, set[str]]:
        # Settled once the three runs carry their custom names (a rename after creation).
        runs = await settled_task_runs(
            state.state_details.flow_run_id,
            lambda found: {run.name for run in found} == {"submit a", "wait a", "fetch a"},
        )
        return {run.name: set(run.tags) for run in runs}

    assert await tags_of(plain) == {"submit a": set(), "wait a": set(), "fetch a": set()}
    assert await tags_of(tagged) == {
        "submit a": {"fal", "media"},
        "wait a": {"fal", "media"},
        "fetch a": {"fal", "media"},
    }
    assert queue.stats()["submissions"] == 2
