"""``python -m pika_tasks.emulator``: the ``emulator`` command on its own."""

from __future__ import annotations

import typer

from pika_tasks.emulator import register_command


def main() -> None:
    """Run the ``emulator`` command."""
    app = typer.Typer(add_completion=False)
    register_command(app)
    app()


if __name__ == "__main__":
    main()
