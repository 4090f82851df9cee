"""Helpers of the batch-flow tests: pointing the flow at an emulator, writing manifests."""

from __future__ import annotations

from typing import Any

import pytest

KEY = "fal-test-KEY-flows-91c4"


def point_at(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point PikaSettings (read from the environment by the flow) at ``emu``."""
    monkeypatch.setenv("FAL_KEY", KEY)
    monkeypatch.setenv("PIKA_QUEUE_URL", emu.url)
    monkeypatch.setenv("PIKA_STORAGE_URL", emu.url)
    monkeypatch.setenv("PIKA_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("PIKA_MAX_POLL_INTERVAL", "0.2")
