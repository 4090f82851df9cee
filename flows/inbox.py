"""Deployment entrypoint for the scheduled inbox flow (see ``prefect.yaml``)."""

from pika_tasks.flows.inbox import process_inbox

__all__ = ["process_inbox"]
