"""The examples in the row pipeline's, the claims' and the records' docstrings run and
show the truth."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "pika_tasks.pipeline",
    "pika_tasks.pipeline._claiming",
    "pika_tasks.pipeline._client_steps",
    "pika_tasks.pipeline._first_pass",
    "pika_tasks.pipeline._options",
    "pika_tasks.pipeline._plan",
    "pika_tasks.pipeline._report",
    "pika_tasks.pipeline._stream",
    "pika_tasks.claims",
    "pika_tasks.records",
    "pika_tasks.shards",
    "pika_tasks.progress",
    "pika_tasks.budget",
    "pika_tasks.storage",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0
