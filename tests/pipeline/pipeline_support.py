"""Helpers of the row-pipeline tests: plain rows and plans."""

from __future__ import annotations

from pika_tasks.images import ImageCheck
from pika_tasks.manifest import ManifestRow
from pika_tasks.pipeline import Action, RowPlan


def row(number: int, image: str = "/in/a.png") -> ManifestRow:
    """A valid row numbered ``number``, id ``r{number}``."""
    return ManifestRow(row_number=number, id=f"r{number}", image=image, prompt="slow zoom in")


def plan_of(item: ManifestRow, action: Action = Action.SUBMIT) -> RowPlan:
    """A plan for ``item`` with a stand-in image check (for tests that send nothing)."""
    check = ImageCheck(
        image=item.image,
        size_bytes=1,
        width=64,
        height=64,
        format="PNG",
        sha256="0" * 64,
        content_type="image/png",
    )
    return RowPlan(item, check, "f", None, action)
