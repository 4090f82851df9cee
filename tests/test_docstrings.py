"""Every docstring example of the package and of the deployment flows runs and shows the truth;
an example that cannot run here (it needs fal, a bucket or a Prefect API) says why it is skipped.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

import pika_tasks

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = [
    "pika_tasks",
    *sorted(
        module.name
        for module in pkgutil.walk_packages(pika_tasks.__path__, "pika_tasks.")
        if not module.name.endswith("__main__")  # running it is running the command
    ),
]
FLOWS = sorted(path.name for path in (ROOT / "flows").glob("*.py"))
SKIP_REASON = re.compile(r"skipped as a doctest", re.IGNORECASE)


def _flow_file(name: str) -> ModuleType:
    """A deployment entrypoint (``flows/*.py``, not a package), loaded from its file."""
    spec = importlib.util.spec_from_file_location(f"flows_{name[:-3]}", ROOT / "flows" / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check(module: ModuleType) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    unexplained = []
    for test in doctest.DocTestFinder().find(module):
        runner.run(test)  # prints each failing example with what it gave
        if any(example.options.get(doctest.SKIP) for example in test.examples) and not (
            SKIP_REASON.search(test.docstring or "")
        ):
            unexplained.append(test.name)
    assert runner.failures == 0, f"{runner.failures} example(s) of {module.__name__} failed"
    assert unexplained == [], "examples skipped without a 'Skipped as a doctest: why' line"


@pytest.mark.parametrize("name", PACKAGE)
def test_package_examples(name: str) -> None:
    _check(importlib.import_module(name))


@pytest.mark.parametrize("name", FLOWS)
def test_deployment_flow_examples(name: str) -> None:
    _check(_flow_file(name))
