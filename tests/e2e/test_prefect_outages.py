"""The orchestrator going away under real runs: a ``prefect server start`` stopped and
started again in the middle of a batch, and a scale-out whose Prefect API fails calls
(through a proxy) while one of its shard runs is lost with its worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import api_proxy
import httpx
import pytest
from api_proxy import ApiProxy
from prefect_stack import PREFECT, ROOT, PrefectStack
from support import probe_video, queue_env, wait_until, write_manifest

from pika_tasks.pipeline import read_report, report_urls
from pika_tasks.records import OutputLocation

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CHILD = ROOT / "tests" / "flow_child.py"
ROWS = [f"r{n},images/{n}.png,zoom in {n}" for n in range(6)]


def states(location: OutputLocation, ids: list[str]) -> list[str]:
    found = (location.load(row_id) for row_id in ids)
    return [record.state if record else "none" for record in found]


def check_videos(out: Path, count: int) -> None:
    for n in range(count):
        assert probe_video((out / f"r{n}.mp4").read_bytes())["codec"] == "h264"


def test_a_prefect_server_restart_mid_run_loses_no_row_and_pays_once(
    stack: PrefectStack, make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    # The global limit allows 2. Both slots are held (their jobs wait at fal) when the
    # server stops; the server keeps its leases in memory, so it forgets them.
    emu = make_emulator(runners=4, job_seconds=0.3, fps=4)
    emu.pause()
    stack.cli("global-concurrency-limit", "create", "fal-pika", "--limit", "2")
    manifest = write_manifest(tmp_path, ROWS)
    out = tmp_path / "out"
    location = OutputLocation(str(out))
    ids = [f"r{n}" for n in range(6)]
    log = tmp_path / "run.log"
    env = stack.env(**queue_env(emu))
    with log.open("w") as sink:
        run = subprocess.Popen(
            # -v: the run's warnings (a slot that outlived its lease) reach the terminal too.
            [sys.executable, "-m", "pika_tasks", "run", str(manifest), "--out", str(out), "-v"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        wait_until(lambda: states(location, ids).count("submitted") == 2, "2 rows at fal", 120)
        stack.stop_server()
        emu.resume()
        # The run goes on without its server: the two rows are fetched and recorded.
        wait_until(
            lambda: states(location, ids).count("succeeded") >= 2, "rows done while it is down"
        )
        stack.start_server()
        run.wait(timeout=200)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert run.returncode == 0, text[-4000:]

    assert states(location, ids) == ["succeeded"] * 6
    check_videos(out, 6)
    assert emu.stats()["submissions"] == 6
    # The two slots the restarted server forgot were given back by name: the limit is free.
    assert text.count("outlived its lease") == 2, text[-4000:]
    assert stack.api("GET", "/v2/concurrency_limits/fal-pika")["active_slots"] == 0


# --------------------------------------------------------------------------- scale-out


def api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


@pytest.fixture
def proxy(prefect_harness: None) -> Iterator[ApiProxy]:
    with ApiProxy(api_url()) as served:
        yield served


@dataclass
class Deployment:
    pool: str
    name: str


def batch_deployment() -> Deployment:
    """A process work pool and a deployment of the batch flow on it, made through the API."""
    api, tag = api_url(), uuid.uuid4().hex[:8]
    pool = f"pika-faults-{tag}"
    httpx.post(f"{api}/work_pools/", json={"name": pool, "type": "process"}).raise_for_status()
    flow = httpx.post(f"{api}/flows/", json={"name": "image-to-video-batch"})
    flow.raise_for_status()
    created = httpx.post(
        f"{api}/deployments/",
        json={
            "name": f"batch-{tag}",
            "flow_id": flow.json()["id"],
            "work_pool_name": pool,
            # Imported from the installed package, as a worker on any machine would.
            "entrypoint": "pika_tasks.flows.image_to_video.image_to_video_batch",
            "enforce_parameter_schema": False,
        },
    )
    created.raise_for_status()
    return Deployment(pool, f"image-to-video-batch/batch-{tag}")


def pool_workers(pool: str) -> list[Any]:
    found = httpx.post(f"{api_url()}/work_pools/{pool}/workers/filter", json={}, timeout=30)
    found.raise_for_status()
    workers: list[Any] = found.json()
    return workers


def parent_of(pid: int) -> int:
    fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])


def process_of_flow_run(flow_run_id: str) -> int | None:
    """The pid of the process running ``flow_run_id`` (a worker's child), if any."""
    wanted = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if wanted in (entry / "environ").read_bytes().split(b"\0"):
                    return int(entry.name)
            except OSError:
                continue
    return None


def test_scale_out_through_api_faults_and_a_shard_lost_with_its_worker(
    proxy: ApiProxy, make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    emu = make_emulator(runners=4, job_seconds=1.0, fps=4)
    limit = api_proxy.create_limit(api_url(), 2)
    deployment = batch_deployment()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "PIKA_"))},
        **queue_env(emu),
        "PREFECT_API_URL": proxy.url,
        # Short Prefect client retries: the outages below (503s, not hangs) outlast them.
        # A timeout long enough for a loaded machine: a shard whose start times out
        # crashes, which is not the fault under test.
        "PREFECT_CLIENT_MAX_RETRIES": "1",
        "PREFECT_API_REQUEST_TIMEOUT": "15",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    logs = [tmp_path / "parent.log"]
    workers: list[subprocess.Popen[bytes]] = []

    worker_command = [PREFECT, "worker", "start", "--pool", deployment.pool, "--type", "process"]

    def start_worker() -> subprocess.Popen[bytes]:
        logs.append(tmp_path / f"worker-{len(workers)}.log")
        with logs[-1].open("w") as sink:
            workers.append(
                subprocess.Popen(
                    [*worker_command, "--limit", "1"],
                    env=env,
                    cwd=ROOT,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            )
        return workers[-1]

    # Two workers, one shard run each: losing one machine loses one shard.
    start_worker()
    start_worker()
    parent: subprocess.Popen[str] | None = None
    try:
        wait_until(lambda: len(pool_workers(deployment.pool)) == 2, "the workers", 120)
        # Slot requests fail for 12 s; creating shard runs fails 3 times; reading their
        # states fails for 10 s.
        faults = [
            proxy.fail(r"/v2/concurrency_limits/increment-with-lease$", seconds=12),
            proxy.fail(r"/deployments/[0-9a-f-]+/create_flow_run$", times=3),
            proxy.fail(r"/flow_runs/filter$", seconds=10),
        ]
        manifest = write_manifest(tmp_path, ROWS)
        out = tmp_path / "out"
        location = OutputLocation(str(out))
        parameters = {
            "manifest": str(manifest),
            "output": str(out),
            "deployment": deployment.name,
            "shard_size": 3,
            "shard_parameters": {"limits": {"concurrency_limit": limit, "max_concurrency": 1}},
            "fail_on_partial": False,
        }
        with logs[0].open("w") as sink:
            parent = subprocess.Popen(
                [sys.executable, str(CHILD), "scale-out", json.dumps(parameters)],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=sink,
                text=True,
            )
        first, second = ["r0", "r1", "r2"], ["r3", "r4", "r5"]

        def lost_point() -> bool:
            # The second shard has one row made and one at fal.
            found = states(location, second)
            return "succeeded" in found and "submitted" in found

        try:
            wait_until(lost_point, "the second shard mid-way", 180, interval=0.01)
        except AssertionError:
            raise AssertionError("\n".join(p.read_text()[-3000:] for p in logs)) from None
        # Its machine is lost: its worker and the shard's process die at once (no hook
        # runs), and Prefect's zombie detection marks the run crashed.
        shard_run = next(r.flow_run_id for r in map(location.load, second) if r)
        process = process_of_flow_run(str(shard_run))
        assert process is not None
        worker = next(w for w in workers if w.pid == parent_of(process))
        os.kill(worker.pid, signal.SIGKILL)
        os.kill(process, signal.SIGKILL)
        worker.wait(timeout=30)
        httpx.post(
            f"{api_url()}/flow_runs/{shard_run}/set_state",
            json={"state": {"type": "CRASHED", "name": "Crashed"}, "force": True},
            timeout=30,
        ).raise_for_status()
        stdout, _ = parent.communicate(timeout=180)
    finally:
        for process_ in [*workers, parent]:
            if process_ is not None and process_.poll() is None:
                process_.kill()
                process_.wait(timeout=30)
    assert parent.returncode == 0, "\n".join(p.read_text()[-3000:] for p in logs)
    summary = json.loads(stdout.strip().splitlines()[-1])
    for fault in faults:
        assert fault.hits > 0, fault

    merged = next(u for u in report_urls(str(out)) if u.endswith("-merged.jsonl"))
    lines = {line.id: line for line in read_report(merged).rows}
    # A string, not a tuple: pytest shortens the repr of anything else, logs included.
    assert [lines[i].status for i in first] == ["succeeded"] * 3, "\n".join(
        [*(f"{i}: {lines[i].status} {lines[i].error}" for i in first)]
        + [p.read_text()[-3000:] for p in logs]
    )
    by_state = dict(zip(states(location, second), second, strict=False))
    made, at_fal = lines[by_state["succeeded"]], lines[by_state["submitted"]]
    never = lines[next(i for i in second if location.load(i) is None)]
    assert made.status == "succeeded" and made.output
    assert at_fal.status == "failed" and at_fal.request_id
    assert "re-attached, not paid again" in (at_fal.error or "")
    assert never.status == "failed" and (never.error or "").startswith("not run:")
    assert summary["result"]["succeeded"] == 4 and summary["result"]["failed"] == 2
    assert summary["result"]["submitted"] == 5
    assert emu.stats()["submissions"] == 5

    # A later run of the manifest finishes the two rows, paying for one: the other's
    # request is re-attached.
    again = subprocess.run(
        [
            sys.executable,
            str(CHILD),
            "batch",
            json.dumps(
                {
                    "manifest": str(manifest),
                    "output": str(out),
                    "limits": {"concurrency_limit": None},
                }
            ),
        ],
        env={**env, "PREFECT_API_URL": api_url()},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["result"]["succeeded"] == 2
    check_videos(out, 6)
    assert emu.stats()["submissions"] == 6
