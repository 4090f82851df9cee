"""Deployment entrypoint for the scale-out flow (see ``prefect.yaml``)."""

from pika_tasks.flows.scale_out import image_to_video_scale_out

__all__ = ["image_to_video_scale_out"]
