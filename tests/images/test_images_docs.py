"""The examples in the images package's docstrings run and show the truth."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "pika_tasks.images",
        "pika_tasks.images._check",
        "pika_tasks.images._deliver",
        "pika_tasks.images._fetch",
    ],
)
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)

    assert result.failed == 0
    if module != "pika_tasks.images._fetch":  # its functions are private: no examples
        assert result.attempted > 0
