"""Rich tables of run reports and estimates, printed by ``run``, ``report`` and ``estimate``."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from pika_tasks.budget import total_usd, usd
from pika_tasks.estimate import CostEstimate
from pika_tasks.pipeline import RunReport


def _when(report: RunReport) -> str:
    return f"{report.finished_at:%Y-%m-%d %H:%M:%S} UTC" if report.finished_at else "-"


def run_summary(report: RunReport, title: str = "Run") -> Table:
    """One run's counts and spend, in one row under the run's name."""
    table = Table(
        title=f"{title} {report.flow_run_name}, finished {_when(report)}", title_justify="left"
    )
    for name in ("rows", "succeeded", "failed", "skipped", "submitted"):
        table.add_column(name, justify="right")
    table.add_column("spend (list price)", justify="right")
    table.add_row(
        str(len(report.rows)),
        f"[green]{report.succeeded}[/green]",
        f"[red]{report.failed}[/red]" if report.failed else "0",
        str(report.skipped),
        str(report.submitted),
        usd(report.spend_usd),
    )
    return table


def runs_overview(reports: list[RunReport]) -> Table:
    """Every run, oldest first, with a total spend."""
    table = Table(title="Runs", title_justify="left", show_footer=True)
    table.add_column("run", "total", overflow="fold")
    table.add_column("finished")
    for name in ("rows", "succeeded", "failed", "skipped", "submitted"):
        table.add_column(name, justify="right")
    table.add_column(
        "spend (list price)",
        usd(total_usd(report.spend_usd for report in reports)),
        justify="right",
    )
    for report in reports:
        table.add_row(
            report.flow_run_name,
            _when(report),
            str(len(report.rows)),
            str(report.succeeded),
            str(report.failed),
            str(report.skipped),
            str(report.submitted),
            usd(report.spend_usd),
        )
    return table


def print_failures(console: Console, report: RunReport, limit: int) -> None:
    """The failed rows of a run and why, at most ``limit`` of them."""
    failures = report.failures
    if not failures:
        return
    table = Table(title=f"Failed rows of {report.flow_run_name}", title_justify="left")
    table.add_column("row", justify="right")
    table.add_column("id", overflow="fold")
    table.add_column("reason", overflow="fold", ratio=1)
    for row in failures[:limit]:
        table.add_row(str(row.row_number), row.id or "-", row.error or "-")
    console.print(table)
    if len(failures) > limit:
        console.print(f"... and {len(failures) - limit} more failed rows in {report.url}")


def print_estimate(console: Console, estimate: CostEstimate) -> None:
    """The estimate's table by resolution and duration, what is free, images and budget."""
    table = Table(
        title=f"Estimate for {estimate.manifest}",
        title_justify="left",
        caption="Rows to re-attach and rows done cost nothing.",
        caption_justify="left",
        show_footer=True,
    )
    table.add_column("resolution", "total")
    table.add_column("duration")
    table.add_column("each", justify="right")
    table.add_column("to submit", str(estimate.to_submit), justify="right")
    table.add_column("cost", usd(estimate.submit_usd), justify="right")
    table.add_column("re-attach", str(estimate.to_reattach), justify="right")
    table.add_column("done", str(estimate.to_skip), justify="right")
    for line in estimate.lines:
        table.add_row(
            line.resolution,
            f"{line.duration} s",
            usd(line.unit_usd),
            str(line.to_submit),
            usd(line.submit_usd),
            str(line.to_reattach),
            str(line.to_skip),
        )
    console.print(table)
    valid = estimate.rows - len(estimate.invalid)
    console.print(
        f"{estimate.rows} rows: {valid} valid, {len(estimate.invalid)} invalid. "
        f"{estimate.to_submit} to submit: [bold]{usd(estimate.submit_usd)}[/bold] at list prices."
    )
    if estimate.output is not None:
        console.print(
            f"Free at {estimate.output}: {estimate.to_skip} done already "
            f"({usd(estimate.skip_usd)} at list prices), {estimate.to_reattach} to re-attach "
            f"to their earlier request ({usd(estimate.reattach_usd)})."
        )
    if estimate.unknown:
        console.print(
            f"[yellow]{estimate.unknown} rows were submitted by a run that stopped before "
            "recording fal's answer; they are reported, not submitted, unless you pass "
            "--resubmit-unknown.[/yellow]"
        )
    if estimate.images:
        described = {
            "http": "passed as http(s) URLs",
            "signed_url": "as signed URLs",
            "data_uri": "inline as data URIs",
            "upload": "uploaded to fal storage",
        }
        parts = [
            f"{count} {described.get(source, source)}"
            for source, count in sorted(estimate.images.items())
        ]
        console.print(f"Images of the rows to submit: {', '.join(parts)}.")
    if estimate.max_spend_usd is not None:
        cap = usd(estimate.max_spend_usd)
        checked = usd(estimate.judged_usd)
        if estimate.cap_reached_mid_run:
            console.print(
                f"[yellow]The run would start (its check before paying prices the new rows "
                f"at {checked}), but the rows to submit cost more than --max-spend-usd {cap}: "
                "the last ones would be refused when the spend reaches it.[/yellow]"
            )
        elif estimate.within_budget:
            console.print(f"[green]Within --max-spend-usd {cap}.[/green]")
        else:
            console.print(
                f"[red]Over --max-spend-usd {cap}: the run would be refused (its check "
                f"before paying prices the rows with no record at the output, images "
                f"unread, at {checked}).[/red]"
            )
    if estimate.invalid:
        problems = Table(title="Invalid rows", title_justify="left")
        problems.add_column("row", justify="right")
        problems.add_column("id", overflow="fold")
        problems.add_column("reason", overflow="fold", ratio=1)
        for problem in estimate.invalid:
            problems.add_row(str(problem.row_number), problem.id or "-", problem.error)
        console.print(problems)
