"""What ``pika-tasks run`` shows while it runs: a live display, a line per row, few log lines.

:class:`LiveProgress` is fed by the flow's ``on_progress``; :class:`TerminalLogs`
decides which log lines reach the terminal.  Prefect's run logs always go to
the Prefect API (its API handler sits on the run loggers themselves); only
their copy on the terminal is filtered here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Literal

from prefect.logging.handlers import PrefectConsoleHandler
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from pika_tasks.pipeline import RowOutcome
from pika_tasks.progress import BatchProgress

Verbosity = Literal["quiet", "normal", "verbose"]
"""``-q``: the summary only; default: the display and a line per row; ``-v``: Prefect's too."""

#: Loggers of flow and task runs: Prefect sends their records to the API.
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class LiveProgress:
    """fal's queue, rows done, failed and left, time left and spend, redrawn as rows move.

    "done" counts rows with a video (made now, or skipped as made before);
    "failed" counts failed and cancelled rows.  Each finished row is printed
    as one line above the display.  Use it as a context manager around the
    run and pass it as the flow's ``on_progress``.  On a terminal it redraws
    in place; elsewhere (a pipe, a CI log) it prints the row lines and its
    final state once.

    Example:
        >>> import io
        >>> from rich.console import Console, RenderableType
        >>> out = io.StringIO()
        >>> with LiveProgress(Console(file=out, width=120)) as live:
        ...     live(BatchProgress(total=2, queued=1, oldest_queue_position=4, spend_usd=0.4))
        ...     row = RowOutcome(id="a", row_number=1, status="succeeded", output="out/a.mp4",
        ...                      seconds=9.5, cost_usd=0.2)
        ...     live(BatchProgress(total=2, succeeded=1, queued=1, spend_usd=0.4, row=row))
        >>> live.last.remaining
        1
        >>> print(out.getvalue().splitlines()[0])
        ✓ a succeeded: out/a.mp4 (9.5 s, $0.20)
    """

    def __init__(self, console: Console, description: str = "Videos") -> None:
        self.console = console
        self.last: BatchProgress | None = None
        self._progress = _TwoLines(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=16),
            TextColumn(
                "done [green]{task.fields[done]}[/green] · failed [red]{task.fields[failed]}[/red]"
                " · left {task.fields[left]}"
            ),
            TextColumn("ETA"),
            TimeRemainingColumn(compact=True),
            TextColumn("spend [bold]${task.fields[spend]:.2f}[/bold]"),
            console=console,
        )
        self._task = self._progress.add_task(
            description, total=None, done=0, failed=0, left="?", spend=0.0
        )
        self._progress.second_line = fal_line(BatchProgress(total=None))

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def __call__(self, progress: BatchProgress) -> None:
        """Show ``progress`` (the flow's ``on_progress``)."""
        self.last = progress
        if progress.row is not None:
            self._progress.console.print(row_line(progress.row), soft_wrap=True)
        self._progress.second_line = fal_line(progress)
        self._progress.update(
            self._task,
            total=progress.total,
            completed=progress.done,
            done=progress.succeeded + progress.skipped,
            failed=progress.failed + progress.cancelled,
            left="?" if progress.remaining is None else progress.remaining,
            spend=progress.spend_usd,
        )


class _TwoLines(Progress):
    """The progress bar's line, and under it a line of text (fal's queue)."""

    second_line: Text = Text()

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        yield self.second_line


def fal_line(progress: BatchProgress) -> Text:
    """The rows at fal: queued (and the oldest one's queue position), running, downloading.

    Example:
        >>> print(fal_line(BatchProgress(total=9, queued=3, oldest_queue_position=7, running=2)))
          at fal: queued 3 (oldest at position 7) · running 2 · downloading 0
    """
    oldest = progress.oldest_queue_position
    position = f" (oldest at position {oldest})" if progress.queued and oldest is not None else ""
    line = Text("  at fal: ", style="dim")
    line.append(f"queued {progress.queued}{position}")
    line.append(f" · running {progress.running} · downloading {progress.downloading}")
    return line


_MARKS = {
    "succeeded": ("✓", "green"),
    "skipped": ("·", "dim"),
    "failed": ("✗", "red"),
    "cancelled": ("✗", "yellow"),
}


def row_line(row: RowOutcome) -> Text:
    """One finished row, as a line: its mark, id, status and video or reason.

    Example:
        >>> print(row_line(RowOutcome(id="b", row_number=2, status="failed", error="boom")))
        ✗ b failed: boom
        >>> print(row_line(RowOutcome(id=None, row_number=7, status="failed", error="no id")))
        ✗ row 7 failed: no id
    """
    mark, style = _MARKS[row.status]
    name = row.id if row.id is not None else f"row {row.row_number}"
    line = Text(f"{mark} ", style=style)
    line.append(name, style="bold")
    line.append(f" {row.status}")
    if row.error:
        line.append(f": {row.error}")
    elif row.output:
        line.append(f": {row.output}")
        details = [f"{row.seconds:.1f} s"] if row.seconds is not None else []
        if row.cost_usd:
            details.append(f"${row.cost_usd:.2f}")
        if details:
            line.append(f" ({', '.join(details)})", style="dim")
    return line


class TerminalLogs:
    """Which log lines reach the terminal while a run is shown, and through which console.

    Prefect prints log records with its console handler (on the root logger,
    see Prefect's ``logging.yml``); the run loggers (``prefect.flow_runs``,
    ``prefect.task_runs``) also have the API handler of their own, so what is
    filtered here still reaches the Prefect API.

    * ``verbose``: every line, as Prefect prints it;
    * ``normal``: no run log lines (the display and the row lines say what
      they would) and no Prefect line below WARNING; other warnings and
      errors still show;
    * ``quiet``: no run log lines and nothing below ERROR.

    While active, the handlers print through ``console`` (the live display's),
    which puts each line above the display instead of over it: Prefect's
    handler keeps the stream it was created with.
    """

    def __init__(self, console: Console, verbosity: Verbosity = "normal") -> None:
        self._console = console
        self._filter = _TerminalFilter(verbosity)
        self._saved: list[tuple[PrefectConsoleHandler, Console]] = []

    def __enter__(self) -> TerminalLogs:
        for handler in _console_handlers():
            self._saved.append((handler, handler.console))
            handler.console = self._console
            handler.addFilter(self._filter)
        return self

    def __exit__(self, *_: object) -> None:
        for handler, original in self._saved:
            handler.console = original
            handler.removeFilter(self._filter)
        self._saved.clear()


class _TerminalFilter(logging.Filter):
    def __init__(self, verbosity: Verbosity) -> None:
        super().__init__()
        self.verbosity = verbosity

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbosity == "verbose":
            return True
        name = record.name
        if any(name == run or name.startswith(f"{run}.") for run in RUN_LOGGERS):
            return False
        if self.verbosity == "quiet":
            return record.levelno >= logging.ERROR
        prefect = name == "prefect" or name.startswith("prefect.")
        return not prefect or record.levelno >= logging.WARNING


def _console_handlers() -> Iterator[PrefectConsoleHandler]:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    seen: set[int] = set()
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and id(handler) not in seen:
                seen.add(id(handler))
                yield handler
