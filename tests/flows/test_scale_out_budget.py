"""A scale-out run's cap covers the whole run: over it, no shard is launched at all.

(Shared out among shards that run, the cap is checked end to end in
``tests/e2e/test_deployments.py``.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import write_manifest

from pika_tasks.flows import image_to_video_scale_out
from pika_tasks.records import OutputLocation, RowRecord


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.timeout(60)
async def test_a_run_over_its_cap_launches_no_shard(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, [f"r{n},images/{n}.png,zoom in {n}" for n in range(5)])
    out = tmp_path / "out"
    # r0 is done already: only the four new rows are priced ($0.80).
    OutputLocation(str(out)).save(RowRecord(id="r0", state="succeeded", fingerprint="f"))

    state = await image_to_video_scale_out(
        str(manifest),
        str(out),
        deployment="no-such-flow/no-such-deployment",  # launching anything would fail
        shard_size=2,
        shard_parameters={"limits": {"max_spend_usd": 0.5}},
        return_state=True,
    )

    assert state.is_failed()
    assert state.message == (
        "not started: the 4 rows to submit cost $0.80 at list prices, more than max_spend_usd $0.50"
    )
    assert not (out / "_shards").exists() or not any((out / "_shards").iterdir())
