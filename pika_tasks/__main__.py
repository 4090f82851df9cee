"""``python -m pika_tasks``: the same as the ``pika-tasks`` command."""

from pika_tasks.cli import main

main()
