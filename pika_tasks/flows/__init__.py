"""Flows that compose the pika-tasks tasks; deployable from ``flows/`` at the repository root."""

from pika_tasks.flows.image_to_video import BatchResult, image_to_video_batch

__all__ = ["BatchResult", "image_to_video_batch"]
