"""docs/emulator.md keeps up with the code: every option, fault and control route is on it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from pika_tasks.emulator import EmulatorConfig
from pika_tasks.emulator._infra import FAULTS

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "emulator.md").read_text()


def section(title: str) -> str:
    start = PAGE.index(title)
    end = PAGE.find("\n## ", start + len(title))
    return PAGE[start : end if end != -1 else len(PAGE)]


def test_every_option_is_in_the_options_table() -> None:
    table = section("## Options")
    documented = set(re.findall(r"^\| `(\w+)`", table, flags=re.M))
    assert {field.name for field in dataclasses.fields(EmulatorConfig)} <= documented


def test_every_fault_is_in_the_faults_table() -> None:
    table = section("### Scripted faults")
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert named == set(FAULTS)


def test_every_control_route_is_listed() -> None:
    for path in (
        "/_emulator/faults",
        "/_emulator/pause",
        "/_emulator/resume",
        "/_emulator/expire",
        "/.well-known/jwks.json",
    ):
        assert path in PAGE
