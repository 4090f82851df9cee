"""The layers hold: the contracts in pyproject's ``[tool.importlinter]`` are kept (and
can break), they name every module, the CLI uses only the public API, and the row
pipeline, the estimate's planner and the report reader work without loading Prefect."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pika_tasks"


def lint_imports(config: Path, cwd: Path, *, pythonpath: Path | None = None) -> tuple[int, str]:
    """Run ``lint-imports`` on ``config`` in a process of its own: (exit code, output)."""
    env = None
    if pythonpath is not None:
        env = {"PYTHONPATH": str(pythonpath), "PATH": ""}
    answer = subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--config",
            str(config),
            "--no-cache",
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return answer.returncode, answer.stdout + answer.stderr


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return found


def top_level_modules() -> set[str]:
    names = {path.stem for path in PACKAGE.glob("*.py")} | {
        path.parent.name for path in PACKAGE.glob("*/__init__.py")
    }
    return {f"pika_tasks.{name}" for name in names - {"__init__", "__main__"}}


def test_the_layer_contracts_are_kept() -> None:
    code, output = lint_imports(ROOT / "pyproject.toml", ROOT)
    assert code == 0, output
    assert f"Contracts: {len(contracts())} kept, 0 broken." in output


def test_the_contracts_name_every_module() -> None:
    """A new module must be placed in the layers, not slip between the lists."""
    by_id = {str(contract["id"]): contract for contract in contracts()}
    modules = top_level_modules()

    def named(contract: str, key: str) -> set[str]:
        listed = by_id[contract][key]
        assert isinstance(listed, list)
        return {name for name in listed if name.startswith("pika_tasks.")}

    bottom = named("bottom", "source_modules")
    assert bottom | named("bottom", "forbidden_modules") == modules
    assert named("emulator", "forbidden_modules") == modules - {
        "pika_tasks.models",
        "pika_tasks.emulator",
    }
    flows = {"pika_tasks.flows", "pika_tasks.cli"}
    assert named("flows", "source_modules") == modules - flows
    assert named("flows", "forbidden_modules") == flows


def in_cli(module: str) -> bool:
    return module == "pika_tasks.cli" or module.startswith("pika_tasks.cli.")


def test_the_cli_uses_only_the_public_api() -> None:
    """Outside its own package the CLI imports no private module (``_name``)."""
    graph = grimp.build_graph("pika_tasks", exclude_type_checking_imports=True)
    private = sorted(
        f"{importer} -> {imported}"
        for importer in graph.modules
        if in_cli(importer)
        for imported in graph.find_modules_directly_imported_by(importer)
        if not in_cli(imported) and any(part.startswith("_") for part in imported.split(".")[1:])
    )
    assert private == []


def test_a_broken_contract_fails(tmp_path: Path) -> None:
    """The same kinds of contract, on a package whose settings import its flows."""
    package = tmp_path / "brokenpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "flows.py").write_text("VALUE = 1\n")
    (package / "settings.py").write_text("from brokenpkg.flows import VALUE\n")
    (package / "models.py").write_text("")
    config = tmp_path / "contracts.toml"
    config.write_text(
        textwrap.dedent(
            """
            [tool.importlinter]
            root_package = "brokenpkg"

            [[tool.importlinter.contracts]]
            name = "Settings and models import nothing above them"
            type = "forbidden"
            source_modules = ["brokenpkg.settings", "brokenpkg.models"]
            forbidden_modules = ["brokenpkg.flows"]
            """
        )
    )

    code, output = lint_imports(config, tmp_path, pythonpath=tmp_path)

    assert code != 0
    assert "BROKEN" in output
    assert "brokenpkg.settings -> brokenpkg.flows" in output


@pytest.mark.parametrize(
    "module", ["pika_tasks.pipeline", "pika_tasks.estimate", "pika_tasks.cli._report"]
)
def test_module_loads_without_prefect(module: str) -> None:
    code = f"import sys, {module}; print('prefect' in sys.modules)"
    answer = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert answer.stdout.strip() == "False", f"{module} loads Prefect"
