"""The examples in the images module's docstrings run and show the truth."""

from __future__ import annotations

import doctest

import pika_tasks.images


def test_docstring_examples() -> None:
    result = doctest.testmod(pika_tasks.images)

    assert result.attempted > 0
    assert result.failed == 0
