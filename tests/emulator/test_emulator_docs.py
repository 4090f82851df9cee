"""The examples in the emulator's docstrings run and show the truth."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import pika_tasks.emulator

MODULES = ["pika_tasks.emulator"] + [
    f"pika_tasks.emulator.{module.name}"
    for module in pkgutil.iter_modules(pika_tasks.emulator.__path__)
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
    if name != "pika_tasks.emulator.__main__":
        assert result.attempted > 0, f"{name} shows no example"
