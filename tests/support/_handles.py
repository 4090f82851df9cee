"""Request handles for tests that need one without submitting."""

from __future__ import annotations

from typing import Any


def handle_at(base: str, request_id: str = "req-1") -> Any:
    """A ``RequestHandle`` whose three URLs are under ``base``, as fal's submit answers name them.

    >>> handle_at("http://queue.test").status_url
    'http://queue.test/fal-ai/pika/requests/req-1/status'
    """
    from pika_tasks.models import RequestHandle

    root = f"{base}/fal-ai/pika/requests/{request_id}"
    return RequestHandle(
        request_id=request_id,
        status_url=f"{root}/status",
        response_url=root,
        cancel_url=f"{root}/cancel",
        endpoint_id="fal-ai/pika/v2.2/image-to-video",
    )
