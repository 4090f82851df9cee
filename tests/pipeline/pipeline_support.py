"""Helpers of the row-pipeline tests: plain rows and plans."""

from __future__ import annotations

from support import stand_in_check

from pika_tasks.manifest import ManifestRow
from pika_tasks.pipeline import Action, RowPlan


def row(number: int, image: str = "/in/a.png") -> ManifestRow:
    """A valid row numbered ``number``, id ``r{number}``."""
    return ManifestRow(row_number=number, id=f"r{number}", image=image, prompt="slow zoom in")


def plan_of(item: ManifestRow, action: Action = Action.SUBMIT) -> RowPlan:
    """A plan for ``item`` with a stand-in image check (for tests that send nothing)."""
    return RowPlan(item, stand_in_check(item.image), "f", None, action)
