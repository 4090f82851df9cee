"""Helpers of the client tests: a recognisable fake key, quick settings, ``expect``.

Every test here uses :data:`FAKE_KEY`.  :func:`expect` replaces
``pytest.raises`` and checks that the error (and its chain) never shows the key.
"""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import Iterator
from typing import Any

import pytest
from support import settings_for

from pika_tasks.settings import PikaSettings

FAKE_KEY = "fk-3c0ffee-5ecret-9d1e"
"""A key that is easy to spot in any text."""


def _tiny_png() -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


IMAGE_URL = _tiny_png()
"""A small image the emulator can read without a network (a data URI)."""
ARGS = {"image_url": IMAGE_URL, "prompt": "the camera slowly zooms in"}


def quick_settings(url: str, **overrides: Any) -> PikaSettings:
    """``support.settings_for`` with :data:`FAKE_KEY` and delays shorter still."""
    quick: dict[str, Any] = {
        "poll_interval": 0.02,
        "max_poll_interval": 0.1,
        "max_retries": 3,
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
        "wait_timeout": 30.0,
    }
    settings: PikaSettings = settings_for(url, key=FAKE_KEY, **{**quick, **overrides})
    return settings


def _texts_of(error: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(vars(current)) if hasattr(current, "__dict__") else ""
        current = current.__cause__ or current.__context__


def assert_no_key(error: BaseException) -> None:
    """The key appears nowhere in the error, its attributes or its chain."""
    for text in _texts_of(error):
        assert FAKE_KEY not in text, f"the key leaked into {type(error).__name__}"


@contextlib.contextmanager
def expect(
    error_type: type[BaseException], match: str | None = None
) -> Iterator[pytest.ExceptionInfo[Any]]:
    """``pytest.raises`` that also checks the error never shows the key."""
    with pytest.raises(error_type, match=match) as info:
        yield info
    assert_no_key(info.value)
