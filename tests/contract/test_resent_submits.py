"""Both of fal's clients send a submit again after a failure: queued once when fal refused it,
queued (and billed) twice when only its answer was lost. The hazard pika-tasks avoids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _contract_support import Driver, under_fault

from pika_tasks.emulator import EmulatorServer

pytestmark = pytest.mark.timeout(120)

Submit = Callable[[Driver, dict[str, Any]], object]
CLIENTS: dict[str, tuple[str, Submit]] = {
    # client: (its driver fixture, one submit through it)
    "fal-client": ("fal_py", lambda fal, job: fal.ok("submit", arguments=job)),
    "@fal-ai/client": ("fal_js", lambda fal, job: fal.ok("submit", input=job)),
}


@pytest.mark.parametrize(
    ("client", "fault", "jobs"),
    [
        # fal refused the submit: sent again, queued once.
        ("fal-client", "submit=rate_limited", 1),
        ("@fal-ai/client", "submit=runner_scheduling_failure", 1),
        # fal queued the job, the answer was lost: sent again, queued (and billed) twice.
        ("fal-client", "submit=gateway_502:queued", 2),
        ("@fal-ai/client", "submit=gateway_504:queued", 2),
    ],
)
def test_a_failed_submit_is_sent_again(
    client: str,
    fault: str,
    jobs: int,
    request: pytest.FixtureRequest,
    emu: EmulatorServer,
    job_input: dict[str, Any],
) -> None:
    fixture, submit = CLIENTS[client]
    driver: Driver = request.getfixturevalue(fixture)
    _, sent, queued = under_fault(emu, fault, lambda: submit(driver, job_input))
    assert (sent, queued) == (2, jobs)
