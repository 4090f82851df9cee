"""Flows that compose the pika-tasks tasks; deployable from ``flows/`` at the repository root.

* :func:`image_to_video_batch`: a video for every row of a manifest;
* :func:`image_to_video_scale_out`: a large manifest split into shards, each run
  on the batch deployment by Prefect's workers;
* :func:`process_inbox`: manifests dropped into a folder, processed on a schedule.
"""

from pika_tasks.flows.image_to_video import BatchResult, image_to_video_batch
from pika_tasks.flows.inbox import process_inbox
from pika_tasks.flows.scale_out import image_to_video_scale_out

__all__ = ["BatchResult", "image_to_video_batch", "image_to_video_scale_out", "process_inbox"]
