"""``pika-tasks report``: what the runs into an output folder did, from their reports."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pika_tasks.budget import total_usd
from pika_tasks.cli._common import (
    EXIT_OK,
    JsonFlag,
    fail_usage,
    json_option,
    stdout,
)
from pika_tasks.errors import PikaError

EXAMPLES = """\
[bold]Examples[/bold]

  The latest run into out/example: counts, spend and failed rows with reasons:
  [cyan]pika-tasks report out/example[/cyan]

  Every run, oldest first, with the total spend:
  [cyan]pika-tasks report out/example --all[/cyan]

  For scripts:
  [cyan]pika-tasks report s3://bucket/out --json | jq '.runs[-1].failed'[/cyan]

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
) -> None:
    """Show what the runs into OUTPUT did, from the reports under OUTPUT/_runs/.

    Counts of succeeded, failed and skipped rows, rows submitted and the spend
    at list prices, and every failed row with its reason.
    """
    from pika_tasks.cli._tables import print_failures, run_summary, runs_overview
    from pika_tasks.pipeline import read_reports

    options = json_option("--storage-options", storage_options)
    try:
        reports = read_reports(output, options, latest_only=not all_runs)
    except PikaError as error:
        fail_usage(str(error))
    except OSError as error:
        fail_usage(f"cannot read the run reports under {output}: {error!r}")
    if not reports:
        fail_usage(f"no run reports under {output}/_runs/: has a run written there yet?")
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
