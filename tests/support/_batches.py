"""Batches as the tests run them: a manifest with its images, the flow in-process, its report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support._media import png_bytes

IMAGES = 8
"""How many distinct images :func:`write_manifest` writes (``images/0.png`` to ``images/7.png``)."""


def write_manifest(folder: Path, rows: list[str], header: str = "id,image,prompt") -> Path:
    """Write ``folder/manifest.csv`` of ``rows`` and the images it may name.

    The images are ``images/{n}.png`` for n < :data:`IMAGES`, each of another
    colour (so each row's video is its own).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> manifest = write_manifest(folder, ["a,images/0.png,zoom in"])
    >>> manifest.read_text()
    'id,image,prompt\\na,images/0.png,zoom in\\n'
    >>> len(list((folder / "images").glob("*.png")))
    8
    """
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for n in range(IMAGES):
        (folder / "images" / f"{n}.png").write_bytes(png_bytes(color=(30 * n, 90, 200 - 20 * n)))
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join([header, *rows]) + "\n")
    return manifest


async def run_batch(manifest: Any, output: Any, **parameters: Any) -> tuple[Any, Any]:
    """Run the batch flow in this process; return its final state and its ``BatchResult``.

    ``manifest`` and ``output`` are URLs or ``Location``; ``parameters`` go to
    the flow.  A failed run (a failed row) returns its result all the same.
    """
    from pika_tasks.flows import BatchResult, image_to_video_batch

    state = await image_to_video_batch(manifest, output, return_state=True, **parameters)
    result = await state.aresult(raise_on_failure=False)
    assert isinstance(result, BatchResult), result
    return state, result


def report_lines(
    report: str | Path, storage_options: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """A run report's lines as dicts, in manifest order (they are written as rows finish).

    ``report`` is a report's URL, or an output folder (a ``Path``): then its newest report.
    """
    from pika_tasks.pipeline import read_report, read_reports

    if isinstance(report, Path):
        reports = read_reports(str(report), storage_options, latest_only=True)
        assert reports, f"no run report under {report}"
        found = reports[-1]
    else:
        found = read_report(report, storage_options)
    return [row.model_dump() for row in found.rows]
