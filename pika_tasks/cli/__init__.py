"""The ``pika-tasks`` command: run a batch, estimate its cost, read its reports, emulate fal.

Commands (``pika-tasks COMMAND --help`` for each):

* ``run MANIFEST --out OUTPUT [--local] [--max-spend-usd USD]``: the batch flow,
  with a live progress display and a summary.
* ``estimate MANIFEST [--out OUTPUT] [--json]``: check every row and image and
  price the run, sending nothing to fal.
* ``report OUTPUT [--all] [--json]``: counts, failures and spend from the run reports.
* ``emulator``: the offline emulator of fal's queue.

Exit codes: 0 success, 1 rows failed or invalid (or the budget was exceeded),
2 usage or configuration errors.

Example:
    ``pika-tasks run examples/manifest.csv --out out/example --local`` runs the
    batch flow offline against the built-in emulator.
"""

from __future__ import annotations

import typer

from pika_tasks.cli import _estimate, _report, _run
from pika_tasks.cli._common import EXIT_OK, EXIT_ROWS_FAILED, EXIT_USAGE

__all__ = ["EXIT_OK", "EXIT_ROWS_FAILED", "EXIT_USAGE", "app", "main"]

EXAMPLES = """\
[bold]Examples[/bold]

  [cyan]pika-tasks estimate examples/manifest.csv[/cyan]
  [cyan]pika-tasks run examples/manifest.csv --out out/example --local[/cyan]
  [cyan]pika-tasks report out/example[/cyan]

  Exit codes: 0 success, 1 rows failed or invalid, 2 usage or configuration error.
"""

EMULATOR_EXAMPLES = """\
[bold]Examples[/bold]

  [cyan]pika-tasks emulator --port 8000[/cyan]
  [cyan]pika-tasks emulator --port 0 --runners 4 --job-seconds 0.5 --job-failure-rate 0.1[/cyan]
"""

app = typer.Typer(
    name="pika-tasks",
    help="Turn folders of still images into videos with Pika 2.2 on fal, orchestrated by Prefect.",
    epilog=EXAMPLES,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
app.command("run", epilog=_run.EXAMPLES)(_run.run)
app.command("estimate", epilog=_estimate.EXAMPLES)(_estimate.estimate)
app.command("report", epilog=_report.EXAMPLES)(_report.report)


def _register_emulator() -> None:
    from pika_tasks.emulator import register_command

    register_command(app)
    for command in app.registered_commands:
        if command.name == "emulator" and not command.epilog:
            command.epilog = EMULATOR_EXAMPLES


_register_emulator()


def main() -> None:
    """Console-script entry point."""
    app(prog_name="pika-tasks")
