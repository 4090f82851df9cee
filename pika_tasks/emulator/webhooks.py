"""Webhooks: the one POST made to ``fal_webhook`` when a job completes.

The body is fal's: ``{request_id, gateway_request_id, status, payload, error}``
with ``status`` ``"OK"`` (``payload`` is the output) or ``"ERROR"`` (``payload``
is the error body, ``error`` names the status code).  fal retries for two
hours; the emulator tries once.

Example:
    >>> from pika_tasks.emulator.webhooks import error_text
    >>> error_text(422)
    'Invalid status code: 422'
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from pika_tasks.emulator.jobs import Job

logger = logging.getLogger(__name__)


def error_text(status_code: int) -> str:
    """The ``error`` of an ERROR webhook for a result answered with ``status_code``."""
    return f"Invalid status code: {status_code}"


def webhook_body(job: Job) -> dict[str, Any]:
    """The webhook body for a COMPLETED job."""
    body: dict[str, Any] = {"request_id": job.request_id, "gateway_request_id": job.request_id}
    if job.error is None:
        body.update(status="OK", payload=job.output_body(job.base_url), error=None)
    else:
        body.update(status="ERROR", payload=job.error.body, error=error_text(job.error.status_code))
    return body


async def send_webhook(client: httpx.AsyncClient, url: str, job: Job) -> bool:
    """POST the webhook of ``job`` to ``url`` once; True if it was accepted (2xx)."""
    try:
        response = await client.post(url, json=webhook_body(job))
        response.raise_for_status()
    except httpx.HTTPError as exc:
        logger.info("webhook for %s failed: %s", job.request_id, type(exc).__name__)
        return False
    return True
