"""The Python examples in the README and docs/ stay true to the API they show.

Every ``python`` block must parse, and every call it makes to a function or
class the package exports (a flow, a task, a model) must bind: a keyword the
function does not take would fail in the reader's hands, not here.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _examples() -> list[Any]:
    found = []
    for page in PAGES:
        for number, match in enumerate(_BLOCK.finditer(page.read_text()), 1):
            found.append(pytest.param(match[1], id=f"{page.name}-{number}"))
    return found


def _imported(tree: ast.Module) -> dict[str, Any]:
    """What the example imports from this package, by the name it uses."""
    names: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pika_tasks"):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                names[alias.asname or alias.name] = getattr(module, alias.name)
    return names


# What calling a Prefect flow or task takes beside its function's own parameters.
_PREFECT_CALL_OPTIONS = frozenset({"return_state", "wait_for"})


def _signature_of(target: Any) -> inspect.Signature:
    # A Prefect flow or task shows the signature of the function it wraps.
    return inspect.signature(getattr(target, "fn", target))


def test_every_page_has_examples_to_check() -> None:
    assert len(_examples()) >= 5


@pytest.mark.parametrize("source", _examples())
def test_an_example_parses_and_its_calls_bind(source: str) -> None:
    tree = ast.parse(source)
    names = _imported(tree)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        target = names.get(node.func.id)
        if target is None or not callable(target):
            continue
        wrapped = hasattr(target, "fn")
        keywords = {
            k.arg: None
            for k in node.keywords
            if k.arg is not None and not (wrapped and k.arg in _PREFECT_CALL_OPTIONS)
        }
        positional = [None] * len(node.args)
        try:
            _signature_of(target).bind_partial(*positional, **keywords)
        except TypeError as error:
            pytest.fail(f"line {node.lineno}: {node.func.id}(...) does not bind: {error}")
