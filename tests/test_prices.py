"""Prices and the estimate, with no emulator and no Prefect: list prices and overrides, exact
sums per resolution and duration, the cap, and what an output folder already holds."""

from __future__ import annotations

import hashlib
import uuid

import fsspec
import pytest
from pydantic import ValidationError
from support import png_bytes

from pika_tasks.estimate import CostEstimate, CostLine, estimate_batch
from pika_tasks.manifest import ManifestRow
from pika_tasks.pipeline import row_fingerprint
from pika_tasks.pricing import PriceTable
from pika_tasks.records import OutputLocation, RowRecord
from pika_tasks.settings import PikaSettings


def test_list_prices_and_the_assumed_ten_second_ones() -> None:
    prices = PriceTable()
    table = {(r, d): prices.cost(r, d) for r in ("720p", "1080p") for d in (5, 10)}  # type: ignore[arg-type]
    assert table == {("720p", 5): 0.20, ("1080p", 5): 0.45, ("720p", 10): 0.40, ("1080p", 10): 0.90}


def test_prices_are_overridden_from_the_settings_and_never_negative(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIKA_PRICE_USD_1080P_5S", "0.5")
    prices = PriceTable.from_settings(PikaSettings())
    assert (prices.cost("1080p", 5), prices.cost("720p", 5)) == (0.5, 0.20)
    with pytest.raises(ValidationError):
        PriceTable(usd_720p_5s=-0.2)


def test_an_estimate_sums_exactly_and_checks_the_cap() -> None:
    lines = [
        CostLine(resolution="720p", duration=5, unit_usd=0.2, to_submit=3, to_skip=2),
        CostLine(resolution="1080p", duration=5, unit_usd=0.45, to_submit=1, to_reattach=1),
    ]
    capped = CostEstimate(manifest="m.csv", rows=7, lines=lines, max_spend_usd=1.05)
    assert (capped.to_submit, capped.to_reattach, capped.to_skip) == (4, 1, 2)
    assert (capped.submit_usd, capped.reattach_usd, capped.skip_usd) == (1.05, 0.45, 0.4)
    assert capped.within_budget is True and capped.ok
    over = capped.model_copy(update={"max_spend_usd": 1.04})
    assert over.within_budget is False and not over.ok
    uncapped = CostEstimate(manifest="m.csv", rows=7, lines=lines)
    assert uncapped.within_budget is None and uncapped.ok


async def test_the_estimate_prices_what_would_be_paid_and_counts_what_is_done() -> None:
    root = f"memory://estimate-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("memory")
    image = png_bytes()
    fs.pipe(f"{root}/in/a.png", image)
    fs.pipe(
        f"{root}/in/manifest.csv",
        b"id,image,prompt,resolution,duration\n"
        b"done,a.png,zoom in,720p,5\n"
        b"new,a.png,pan left,720p,5\n"
        b"big,a.png,orbit,1080p,10\n"
        b"gone,missing.png,tilt,720p,5\n"
        b"bad,a.png,,720p,5\n",
    )
    # "done" has its video at the output: skipped, for free.
    out = OutputLocation(f"{root}/out")
    done = ManifestRow(row_number=1, id="done", image="a.png", prompt="zoom in")
    video = b"\x00" * 32
    fs.pipe(out.video_url("done"), video)
    print_ = row_fingerprint(done, hashlib.sha256(image).hexdigest(), PikaSettings().endpoint_id)
    out.save(
        RowRecord(
            id="done",
            state="succeeded",
            fingerprint=print_,
            output=out.video_url("done"),
            size=len(video),
        )
    )

    estimate = await estimate_batch(
        f"{root}/in/manifest.csv", out.url, max_spend_usd=1.0, settings=PikaSettings()
    )

    assert estimate.rows == 5
    assert [(problem.row_number, problem.id) for problem in estimate.invalid] == [
        (4, "gone"),
        (5, "bad"),
    ]
    by_kind = {(line.resolution, line.duration): line for line in estimate.lines}
    assert (by_kind["720p", 5].to_submit, by_kind["720p", 5].to_skip) == (1, 1)
    assert by_kind["1080p", 10].to_submit == 1
    assert (estimate.submit_usd, estimate.skip_usd) == (1.10, 0.20)  # 0.20 + 0.90
    assert estimate.within_budget is False and not estimate.ok
    fs.rm(root, recursive=True)
