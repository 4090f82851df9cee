"""The examples in the manifest modules' docstrings run and show the truth."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "name",
    [
        "pika_tasks.manifest",
        "pika_tasks.manifest.ids",
        "pika_tasks.manifest._models",
        "pika_tasks.manifest._rows",
        "pika_tasks.manifest._reader",
        "pika_tasks.manifest._source",
        "pika_tasks.manifest._delimited",
        "pika_tasks.manifest._json",
        "pika_tasks.manifest._parquet",
    ],
)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))

    assert result.attempted > 0
    assert result.failed == 0
