"""The live progress display of ``pika-tasks run``, fed by the flow's ``on_progress``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import TracebackType

from prefect.logging.handlers import PrefectConsoleHandler
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
)

from pika_tasks.progress import BatchProgress


class LiveProgress:
    """Rows done, failed and left, time left and spend so far, redrawn as rows finish.

    "done" counts rows with a video (made now, or skipped as made before).
    Use it as a context manager around the run and pass it as the flow's
    ``on_progress``.  On a terminal it redraws in place, with the run's log
    lines printed above it; elsewhere (a pipe, a CI log) it prints its final
    state once.

    Example:
        >>> import io
        >>> from rich.console import Console
        >>> with LiveProgress(Console(file=io.StringIO())) as live:
        ...     live(BatchProgress(total=2, succeeded=1, spend_usd=0.2))
        >>> live.last.remaining
        1
    """

    def __init__(self, console: Console, description: str = "Videos") -> None:
        self.console = console
        self.last: BatchProgress | None = None
        self._progress = Progress(
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
        self._logs = _LogRoute(console)

    def __enter__(self) -> LiveProgress:
        self._logs.__enter__()
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._progress.stop()
        self._logs.__exit__(kind, error, trace)

    def __call__(self, progress: BatchProgress) -> None:
        """Show ``progress`` (the flow's ``on_progress``)."""
        self.last = progress
        self._progress.update(
            self._task,
            total=progress.total,
            completed=progress.done,
            done=progress.succeeded + progress.skipped,
            failed=progress.failed + progress.cancelled,
            left="?" if progress.remaining is None else progress.remaining,
            spend=progress.spend_usd,
        )


class _LogRoute:
    """Sends Prefect's console log lines through ``console`` while the display is live.

    Prefect's console handler keeps the stream it was created with, which would
    write over a live display; printing through the display's console puts each
    line above it instead.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        self._saved: list[tuple[PrefectConsoleHandler, Console]] = []

    def __enter__(self) -> None:
        for handler in _console_handlers():
            self._saved.append((handler, handler.console))
            handler.console = self._console

    def __exit__(self, *_: object) -> None:
        for handler, original in self._saved:
            handler.console = original
        self._saved.clear()


def _console_handlers() -> Iterator[PrefectConsoleHandler]:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    seen: set[int] = set()
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and id(handler) not in seen:
                seen.add(id(handler))
                yield handler
