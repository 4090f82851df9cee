"""The layers hold: nothing below the flows imports them, and the row pipeline, the
estimate's planner and the report reader work without loading Prefect."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pika_tasks"
ABOVE_THE_FLOWS = ("flows", "cli")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_nothing_below_the_flows_imports_them() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        layer = path.relative_to(PACKAGE).parts[0]
        if layer in ABOVE_THE_FLOWS or layer == "__init__.py":
            continue  # the package root loads the flows lazily, by name
        if any(m.startswith("pika_tasks.flows") for m in imported_modules(path)):
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


@pytest.mark.parametrize(
    "module", ["pika_tasks.pipeline", "pika_tasks.estimate", "pika_tasks.cli._report"]
)
def test_module_loads_without_prefect(module: str) -> None:
    code = f"import sys, {module}; print('prefect' in sys.modules)"
    answer = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert answer.stdout.strip() == "False", f"{module} loads Prefect"
