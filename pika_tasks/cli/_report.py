"""``pika-tasks report``: what the runs into an output folder did, from their reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pika_tasks.budget import total_usd
from pika_tasks.cli._common import (
    EXIT_OK,
    JsonFlag,
    console,
    fail_usage,
    json_option,
    stdout,
)
from pika_tasks.errors import PikaError

if TYPE_CHECKING:
    from pika_tasks.pipeline import RunReport

EXAMPLES = """\
[bold]Examples[/bold]

  The latest run into out/example: counts, spend and failed rows with reasons:
  [cyan]pika-tasks report out/example[/cyan]

  Every run, oldest first, with the total spend:
  [cyan]pika-tasks report out/example --all[/cyan]

  For scripts:
  [cyan]pika-tasks report s3://bucket/out --json | jq '.runs[-1].failed'[/cyan]

  A picture of the latest run's videos (first, middle and last frames):
  [cyan]pika-tasks report out/example --contact-sheet sheet.jpg[/cyan]

  Exit codes: 0 reports read, 2 no report there or one is unreadable.
"""


def report(
    output: Annotated[str, typer.Argument(help="Output folder of the runs (any fsspec URL).")],
    all_runs: Annotated[
        bool,
        typer.Option("--all/--latest", help="Every run, or only the latest (default)."),
    ] = False,
    json_output: JsonFlag = False,
    max_failures: Annotated[int, typer.Option(min=0, help="Failed rows listed per run.")] = 20,
    storage_options: Annotated[
        str | None,
        typer.Option(help="fsspec storage options for OUTPUT, as JSON.", rich_help_panel="Storage"),
    ] = None,
    contact_sheet: Annotated[
        Path | None,
        typer.Option(
            "--contact-sheet",
            help="Also write a contact sheet of the latest run's videos to this JPEG file: "
            "first, middle and last frame of the first 12 videos by row number (what the "
            "run's summary artifact shows).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Show what the runs into OUTPUT did, from the reports under OUTPUT/_runs/.

    Counts of succeeded, failed and skipped rows, rows submitted and the spend
    at list prices, and every failed row with its reason.
    """
    from pika_tasks.cli._tables import print_failures, run_summary, runs_overview
    from pika_tasks.pipeline import read_reports
    from pika_tasks.shards import whole_runs

    options = json_option("--storage-options", storage_options)
    try:
        # A scale-out's shard reports are counted in its merged report, not again.
        reports = whole_runs(read_reports(output, options, latest_only=not all_runs))
    except PikaError as error:
        fail_usage(str(error))
    except OSError as error:
        fail_usage(f"cannot read the run reports under {output}: {error!r}")
    if not reports:
        fail_usage(f"no run reports under {output}/_runs/: has a run written there yet?")
    if contact_sheet is not None:
        _write_contact_sheet(reports[-1], output, options, contact_sheet)
    if json_output:
        runs = [item.model_dump(mode="json") for item in reports]
        total = total_usd(item.spend_usd for item in reports)
        typer.echo(json.dumps({"output": output, "runs": runs, "spend_usd": total}, indent=2))
        raise typer.Exit(EXIT_OK)
    if all_runs:
        stdout.print(runs_overview(reports))
    else:
        stdout.print(run_summary(reports[-1], title="Latest run"))
    for item in reports:
        print_failures(stdout, item, max_failures)
    raise typer.Exit(EXIT_OK)


def _write_contact_sheet(
    run: RunReport, output: str, options: dict[str, Any] | None, path: Path
) -> None:
    """Write the run's contact sheet to ``path``, from its report and the videos in ``output``."""
    from rich.markup import escape

    from pika_tasks.contact_sheet import (
        SHEET_ROWS,
        contact_sheet,
        poster_frames_at,
        sheet_label,
    )
    from pika_tasks.storage import join

    # The report's rows are in row order: the same videos the run's summary showed.
    written = [row for row in run.rows if row.status == "succeeded" and row.id][:SHEET_ROWS]
    if not written:
        fail_usage(f"the run {run.name} wrote no video: no contact sheet to make")
    lines = []
    for row in written:
        url = row.output or join(output, f"{row.id}.mp4")
        try:
            lines.append(poster_frames_at(url, sheet_label(row.row_number, row.id), options))
        except (OSError, ValueError) as error:
            console.print(
                f"[yellow]row {row.row_number} left off the contact sheet:[/] {escape(str(error))}"
            )
    if not lines:
        fail_usage(f"none of the videos of the run {run.name} could be read under {output}")
    jpeg = contact_sheet(lines)
    try:
        path.write_bytes(jpeg)
    except OSError as error:
        fail_usage(f"cannot write the contact sheet to {path}: {error}")
    console.print(f"Contact sheet of {len(lines)} videos: {path} ({len(jpeg):,} bytes)")
