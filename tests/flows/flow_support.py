"""Helpers of the batch-flow tests: pointing the flow at an emulator, writing manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import png_bytes

KEY = "fal-test-KEY-flows-91c4"


def point_at(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point PikaSettings (read from the environment by the flow) at ``emu``."""
    monkeypatch.setenv("FAL_KEY", KEY)
    monkeypatch.setenv("PIKA_QUEUE_URL", emu.url)
    monkeypatch.setenv("PIKA_STORAGE_URL", emu.url)
    monkeypatch.setenv("PIKA_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("PIKA_MAX_POLL_INTERVAL", "0.2")


def write_manifest(folder: Path, rows: list[str], header: str = "id,image,prompt") -> Path:
    """Write ``manifest.csv`` and one distinct PNG per ``images/{n}.png`` it names."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for n in range(8):
        (folder / "images" / f"{n}.png").write_bytes(png_bytes(color=(30 * n, 90, 200 - 20 * n)))
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join([header, *rows]) + "\n")
    return manifest
