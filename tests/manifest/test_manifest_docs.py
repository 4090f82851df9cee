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
    ],
)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))

    assert result.attempted > 0
    assert result.failed == 0
