"""Three log lines fewer per row: a completed task run's "Finished in state Completed()".

Prefect logs that line for every task run that ends, and a row has three
task runs (submit, wait, fetch).  The line says nothing the task run's state
does not: the UI shows the state, and Prefect sends a state event for it.
On Prefect Cloud every log line counts against the workspace's rate limit
(2,000 lines and events a minute on the Hobby tier), and every line costs
the flow process a console print and an API write.

While the batch flow runs, :func:`completed_lines_dropped` keeps those
lines of this project's tasks from being logged at all.  A task run that
fails, crashes or is cancelled still logs its line (at ERROR), every other
line of the task runs still goes out, and other tasks' lines are untouched.

Example:
    >>> import logging
    >>> seen = []
    >>> class Keep(logging.Handler):
    ...     def emit(self, record): seen.append(record.getMessage())
    >>> logger = logging.getLogger("example.task_runs")  # Prefect's: "prefect.task_runs"
    >>> keep = Keep()
    >>> logger.setLevel(logging.INFO)
    >>> logger.propagate = False
    >>> logger.addHandler(keep)
    >>> def line(task_name: str, message: str, level: int = logging.INFO) -> None:
    ...     logger.log(level, message, extra={"task_name": task_name})
    >>> with completed_lines_dropped(["fetch-video"], logger_name="example.task_runs"):
    ...     line("fetch-video", "Finished in state Completed()")
    ...     line("fetch-video", "Finished in state Failed('no video')", logging.ERROR)
    ...     line("my-task", "Finished in state Completed()")
    >>> logger.removeHandler(keep)
    >>> seen
    ["Finished in state Failed('no video')", 'Finished in state Completed()']
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

__all__ = ["completed_lines_dropped"]

#: The logger Prefect's task engine logs task runs' lines to.
_TASK_RUN_LOGGER = "prefect.task_runs"
_COMPLETED = "Finished in state Completed("


class _DropCompleted(logging.Filter):
    """Drops the INFO "Finished in state Completed(...)" lines of the named tasks."""

    def __init__(self, task_names: Iterable[str]) -> None:
        super().__init__()
        self._task_names = frozenset(task_names)

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno == logging.INFO
            and getattr(record, "task_name", None) in self._task_names
            and isinstance(record.msg, str)
            and record.msg.startswith(_COMPLETED)
        )


@contextmanager
def completed_lines_dropped(
    task_names: Iterable[str], logger_name: str = _TASK_RUN_LOGGER
) -> Iterator[None]:
    """Within the block, completed task runs of ``task_names`` log no "Finished" line."""
    logger = logging.getLogger(logger_name)
    dropping = _DropCompleted(task_names)
    logger.addFilter(dropping)
    try:
        yield
    finally:
        logger.removeFilter(dropping)
