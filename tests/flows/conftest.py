"""Fixtures of the batch-flow tests: a fast emulator the flow's settings point at."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from support import point_at


@pytest.fixture
def queue(make_emulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """An emulator (runners=4, short jobs, 4 fps) with FAL_KEY and URLs set for the flow."""
    emu = make_emulator(runners=4, job_seconds=0.2, fps=4)
    point_at(emu, monkeypatch)
    return emu
