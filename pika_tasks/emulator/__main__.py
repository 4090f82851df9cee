"""``python -m pika_tasks.emulator``: the ``emulator`` command on its own."""

from __future__ import annotations

import typer

from pika_tasks.emulator.cli import register


def main() -> None:
    """Run the ``emulator`` command."""
    app = typer.Typer(add_completion=False)
    register(app)
    app()


if __name__ == "__main__":
    main()
