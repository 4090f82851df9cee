"""Deployment entrypoint for the batch flow (see ``prefect.yaml``)."""

from pika_tasks.flows.image_to_video import image_to_video_batch

__all__ = ["image_to_video_batch"]
