"""What a new user does, end to end: ``prefect deploy --all`` in a fresh checkout, a batch
run of the deployment on a worker, and the run's pages in a real browser.

One Prefect server serves the whole module: the deploy, the run and the browser
look at the same server, as a user's would.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser import ARTIFACTS, chromium_page, missing_browser
from checkout import copy_checkout
from e2e_support import LIMIT, wait_for_state
from prefect_stack import PrefectStack
from support import free_port, probe_video, queue_env, write_manifest

# pytest-xdist runs a module on one worker (--dist loadscope), so its tests share one server.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

LOCAL_POOL = "pika-local"
"""The work pool prefect.yaml names: its local default."""
ROWS = 3
SUMMARY_TITLE = "Image-to-video batch"


@dataclass
class DeployedCheckout:
    """A fresh checkout deployed with ``prefect deploy --all``, and one batch run of it."""

    stack: PrefectStack
    checkout: Path
    deploy_output: str
    deployments: list[dict[str, Any]]
    run_id: str
    state: str
    output: Path


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedCheckout]:
    from pika_tasks.emulator import EmulatorServer

    tmp = tmp_path_factory.mktemp("fresh-checkout")
    stack = PrefectStack(tmp_path_factory.mktemp("prefect-home"), free_port())
    emu = EmulatorServer(runners=4, job_seconds=0.2, fps=8)
    try:
        emu.start()
        stack.start_server()
        checkout = copy_checkout(tmp / "checkout")
        # What docs/deployments.md tells a user to run, from the root of the checkout.
        stack.cli("global-concurrency-limit", "create", "fal-pika", "--limit", str(LIMIT))
        stack.cli("work-pool", "create", LOCAL_POOL, "--type", "process")
        deploy_output = stack.cli("deploy", "--all", cwd=checkout, timeout=240)
        deployments = stack.api("POST", "/deployments/filter", json={})

        stack.start_worker(LOCAL_POOL, "worker-0", stack.env(**queue_env()))
        manifest = write_manifest(
            tmp / "batch", [f"r{n},images/{n}.png,zoom in {n}" for n in range(ROWS)]
        )
        output = tmp / "videos"
        # The local default is an emulator on port 8000; this run points at the test's
        # own, as a user points one run elsewhere: with the run's job variables.
        queue = json.dumps({"PIKA_QUEUE_URL": emu.url, "PIKA_STORAGE_URL": emu.url})
        answer = stack.cli(
            "deployment",
            "run",
            "image-to-video-batch/batch",
            "--param",
            f"manifest={manifest}",
            "--param",
            f"output={output}",
            "--job-variable",
            f"env={queue}",
        )
        run_id = answer.split("UUID:")[1].split()[0]
        state = wait_for_state(stack, run_id)
        yield DeployedCheckout(stack, checkout, deploy_output, deployments, run_id, state, output)
    finally:
        emu.stop()
        stack.stop()


def _placeholders(value: Any) -> list[str]:
    """Every string in ``value`` (nested) that still holds a ``{{ ... }}`` template."""
    if isinstance(value, str):
        return [value] if "{{" in value else []
    if isinstance(value, dict):
        return [found for item in value.values() for found in _placeholders(item)]
    if isinstance(value, list):
        return [found for item in value for found in _placeholders(item)]
    return []


def _say(request: pytest.FixtureRequest, line: str) -> None:
    """Print ``line`` on the terminal now, past pytest's capture of the test's output."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\n{line}")


def test_prefect_deploy_all_in_a_fresh_checkout_deploys_working_local_defaults(
    deployed: DeployedCheckout,
) -> None:
    by_name = {d["name"]: d for d in deployed.deployments}
    assert set(by_name) == {"batch", "scale-out", "inbox"}, deployed.deploy_output
    for name, deployment in by_name.items():
        rendered = {
            "work_pool_name": deployment["work_pool_name"],
            "parameters": deployment["parameters"],
            "job_variables": deployment["job_variables"],
            "pull_steps": deployment["pull_steps"],
            "schedules": deployment["schedules"],
        }
        assert not _placeholders(rendered), (name, rendered)
        assert deployment["work_pool_name"] == LOCAL_POOL
        # Workers run the flows from the checkout that was deployed.
        assert deployment["pull_steps"] == [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": str(deployed.checkout)
                }
            }
        ]
        assert deployment["job_variables"]["env"]["PIKA_QUEUE_URL"] == "http://127.0.0.1:8000"
    inbox = by_name["inbox"]
    assert inbox["parameters"] == {
        "inbox": f"{deployed.checkout}/inbox",
        "output": f"{deployed.checkout}/out/inbox",
    }
    assert [s["schedule"]["cron"] for s in inbox["schedules"]] == ["*/5 * * * *"]
    assert by_name["scale-out"]["parameters"] == {"deployment": "image-to-video-batch/batch"}

    # And the batch deployment runs on a worker of the pool.
    run = deployed.stack.flow_run(deployed.run_id)
    assert run["deployment_id"] == by_name["batch"]["id"]
    assert deployed.state == "COMPLETED", deployed.stack.tail()
    for n in range(ROWS):
        assert probe_video((deployed.output / f"r{n}.mp4").read_bytes())["codec"] == "h264"


def test_the_run_page_and_its_summary_with_the_contact_sheet_render_in_chromium(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    reason = missing_browser()
    if reason:
        _say(request, f"browser test skipped: {reason}")
        pytest.skip(reason)
    # Asked for only now: without a browser, no server is started for this test.
    deployed: DeployedCheckout = request.getfixturevalue("deployed")
    assert deployed.state == "COMPLETED", deployed.stack.tail()
    stack = deployed.stack
    artifacts = stack.api(
        "POST",
        "/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [deployed.run_id]}}},
    )
    summaries = [
        a for a in artifacts if a["type"] == "markdown" and SUMMARY_TITLE in (a["data"] or "")
    ]
    assert len(summaries) == 1, [(a["type"], a["description"]) for a in artifacts]
    summary = summaries[0]
    assert "![contact sheet](data:image/jpeg;base64," in summary["data"], summary["data"][:400]

    screenshots = ARTIFACTS / "browser"
    shutil.rmtree(screenshots, ignore_errors=True)
    screenshots.mkdir(parents=True)
    ui = stack.url.removesuffix("/api")
    run_name = stack.flow_run(deployed.run_id)["name"]
    with chromium_page(tmp_path / "profile") as page:
        page.goto(f"{ui}/runs/flow-run/{deployed.run_id}")
        page.get_by_text(run_name).first.wait_for(timeout=60_000)
        page.get_by_text("Completed").first.wait_for(timeout=30_000)
        # The run page lists the summary among the run's artifacts.
        page.get_by_text("Artifacts", exact=True).first.click()
        page.get_by_text(summary["key"] or "Summary").first.wait_for(timeout=30_000)
        page.screenshot(path=screenshots / "flow-run.png", full_page=True)

        page.goto(f"{ui}/artifacts/artifact/{summary['id']}")
        page.get_by_role("heading", name=SUMMARY_TITLE).wait_for(timeout=60_000)
        sheet = page.locator('img[alt="contact sheet"]')
        sheet.wait_for(timeout=30_000)
        # The image decodes from its data: URI; a broken one stays at width 0.
        page.wait_for_function("img => img.complete", arg=sheet.element_handle(), timeout=30_000)
        width = sheet.evaluate("img => img.naturalWidth")
        sheet.scroll_into_view_if_needed()
        page.screenshot(path=screenshots / "summary.png", full_page=True)
    _say(request, f"browser test screenshots: {screenshots}")
    assert width > 0
    assert (screenshots / "summary.png").stat().st_size > 0
