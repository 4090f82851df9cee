"""The examples in the client's and the errors' docstrings run and show the truth."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "name", ["pika_tasks.client", "pika_tasks.errors", "pika_tasks._responses"]
)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0
