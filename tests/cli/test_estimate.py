"""``pika-tasks estimate``: every row and image checked and priced, and nothing sent to fal
(the emulator, which the process is pointed at, sees no request at all)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import explain, noise_png, pika, process_env, write_manifest

pytestmark = pytest.mark.timeout(120)

ROWS = [
    "a,images/0.png,zoom in,720p,5",
    "b,images/1.png,pan left,720p,10",
    "c,images/2.png,orbit,1080p,5",
    "big,images/noise.png,tilt up,1080p,5",
]
HEADER = "id,image,prompt,resolution,duration"


def test_estimate_prices_rows_and_sends_nothing(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    emu = make_emulator(fps=4)
    manifest = write_manifest(tmp_path, ROWS, header=HEADER)
    # Too large to send inline: the run would upload it to fal storage.
    noise = noise_png(1024)  # random pixels do not compress
    (tmp_path / "images" / "noise.png").write_bytes(noise)
    assert len(noise) > 2_000_000

    done = pika("estimate", str(manifest), "--json", env=process_env(emu))
    assert done.returncode == 0, explain(done)
    estimate = json.loads(done.stdout)
    lines = {(line["resolution"], line["duration"]): line for line in estimate["lines"]}
    assert {kind: line["to_submit"] for kind, line in lines.items()} == {
        ("720p", 5): 1,
        ("720p", 10): 1,
        ("1080p", 5): 2,
    }
    assert lines["1080p", 5]["submit_usd"] == 0.9
    assert (estimate["rows"], estimate["to_submit"], estimate["submit_usd"]) == (4, 4, 1.5)
    assert estimate["images"] == {"data_uri": 3, "upload": 1}
    assert estimate["invalid"] == []

    stats = emu.stats()
    assert (stats["submissions"], stats["uploads"], stats["upload_bytes"]) == (0, 0, 0)
    assert sum(stats["requests"].values()) == 0


def test_estimate_lists_invalid_rows_and_uses_configured_prices(tmp_path: Path) -> None:
    manifest = write_manifest(
        tmp_path,
        [*ROWS[:3], "d,images/missing.png,dolly,720p,5", "e,images/3.png,,720p,5"],
        header=HEADER,
    )
    env = process_env(PIKA_PRICE_USD_1080P_5S="0.5", PIKA_PRICE_USD_720P_10S="0.35")

    done = pika("estimate", str(manifest), "--max-spend-usd", "5", env=env)
    assert done.returncode == 1, explain(done)
    table = done.stdout.splitlines()
    row = next(line for line in table if "1080p" in line)
    assert [cell.strip() for cell in row.split("│") if cell.strip()] == [
        "1080p",
        "5 s",
        "$0.50",
        "1",
        "$0.50",
        "0",
        "0",
    ]
    assert "3 to submit: $1.05 at list prices" in done.stdout
    assert "5 rows: 3 valid, 2 invalid" in done.stdout
    assert "Within --max-spend-usd $5.00" in done.stdout
    assert "Invalid rows" in done.stdout
    assert "missing.png: not found" in done.stdout
    assert "row 5, field 'prompt'" in done.stdout


def test_a_manifest_that_breaks_after_its_first_rows_is_a_clear_usage_error(
    tmp_path: Path,
) -> None:
    """A JSON array cut short after its first item: said in one line, exit 2, no traceback."""
    write_manifest(tmp_path, ROWS[:1], header=HEADER)  # writes the images beside it
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        '[{"id": "a", "image": "images/0.png", "prompt": "zoom in"},\n {"id": "b", "image": '
    )
    done = pika("estimate", str(manifest), env=process_env())
    assert done.returncode == 2, explain(done)
    assert "Traceback" not in done.stderr and "ExceptionGroup" not in done.stderr
    assert "manifest.json" in done.stderr
