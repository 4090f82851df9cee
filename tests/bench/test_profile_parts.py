"""``python -m bench.profile --gil``: sampled stacks are told apart by part of the process."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.profile import by_part

MAIN = "_run_module_as_main (<frozen runpy>:198);<module> (bench/worker.py:104)"
THREAD = "Thread._bootstrap (threading.py:1002);Thread.run (threading.py:982)"
TASK = "AsyncTaskRunEngine.call_task_fn (prefect/task_engine.py:1720)"


@pytest.mark.parametrize(
    ("stack", "part"),
    [
        (
            f"{MAIN};{TASK};PikaClient.submit (pika_tasks/client.py:400)",
            "our client and HTTP, in the task bodies",
        ),
        (
            f"{MAIN};{TASK};emit_event (prefect/events/utilities.py:1)",
            "the rest of the task bodies (their Prefect logging, state and result)",
        ),
        (
            f"{MAIN};AsyncTaskRunEngine.start (prefect/task_engine.py:1)",
            "Prefect's task engine around the bodies",
        ),
        (
            f"{THREAD};BaseEventLoop.run_forever (asyncio/base_events.py:1);"
            "PikaClient._listen (pika_tasks/client.py:1)",
            "the status follower's thread (its loop and client)",
        ),
        (
            f"{THREAD};_WorkItem.run (concurrent/futures/thread.py:1);"
            "OutputLocation.save (pika_tasks/records.py:1)",
            "worker threads (files, images, hashes)",
        ),
        (f"{MAIN};_save (pika_tasks/pipeline/_row.py:1)", "the row pipeline and flow wiring"),
        (f"{MAIN};Handle._run (asyncio/events.py:1)", "the event loop itself and the rest"),
    ],
)
def test_each_stack_goes_to_its_part(stack: str, part: str, tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(f"{stack} 250\n{MAIN};_find_and_load (<frozen importlib._bootstrap>:1) 50\n")
    lines = by_part(raw, rows=10, rate=250).splitlines()
    # 250 samples at 250 a second over 10 rows: 100 ms a row, imports apart.
    assert lines[0].startswith("100.00 ms a row")
    assert f" 100.00 ms  {part}" in lines
    assert "  20.00 ms  start-up imports" in lines
