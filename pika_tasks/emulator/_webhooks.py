"""Webhooks: the signed POST made to ``fal_webhook`` when a job completes, and its retries.

The body is fal's: ``{request_id, gateway_request_id, status, payload, error}``
with ``status`` ``"OK"`` (``payload`` is the output) or ``"ERROR"`` (``payload``
is the error body, ``error`` names the status code).  ``gateway_request_id``
names the last attempt of the job: it differs from ``request_id`` once a
failed runner made fal run the job again.

Each delivery carries fal's signature headers (see
:mod:`~pika_tasks.emulator._signing`), signed afresh at every attempt.  A
delivery the receiver does not accept with a 2xx within ``webhook_timeout``
is retried 10 times, as fal does over two hours: the waits double, and add up
to ``webhook_retry_span`` seconds.

Example:
    >>> from pika_tasks.emulator._webhooks import error_text, retry_delays
    >>> error_text(422)
    'Invalid status code: 422'
    >>> delays = retry_delays(1023.0)
    >>> delays[:3], sum(delays)
    ([1.0, 2.0, 4.0], 1023.0)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx

from pika_tasks.emulator._jobs import Job
from pika_tasks.emulator._signing import WebhookSigner

logger = logging.getLogger(__name__)

RETRIES = 10
"""How many times fal retries a webhook delivery that failed."""


def error_text(status_code: int) -> str:
    """The ``error`` of an ERROR webhook for a result answered with ``status_code``."""
    return f"Invalid status code: {status_code}"


def retry_delays(span: float) -> list[float]:
    """The waits before each retry: doubling, adding up to ``span`` seconds."""
    first = span / (2**RETRIES - 1)
    return [first * 2**n for n in range(RETRIES)]


def webhook_body(job: Job) -> dict[str, Any]:
    """The webhook body for a COMPLETED job."""
    body: dict[str, Any] = {
        "request_id": job.request_id,
        "gateway_request_id": job.gateway_request_id,
    }
    if job.error is None:
        body.update(status="OK", payload=job.output_body(job.base_url), error=None)
    else:
        body.update(status="ERROR", payload=job.error.body, error=error_text(job.error.status_code))
    return body


async def deliver_webhook(
    client: httpx.AsyncClient,
    url: str,
    job: Job,
    signer: WebhookSigner,
    *,
    retry_span: float,
    timeout: float,
) -> bool:
    """POST the webhook of ``job`` to ``url`` until it is accepted or the retries run out.

    Every attempt is recorded in ``job.webhook_attempts``.  Returns True once
    an attempt was answered with a 2xx.
    """
    body = json.dumps(webhook_body(job)).encode()
    for attempt, delay in enumerate([0.0, *retry_delays(retry_span)], start=1):
        if delay:
            await asyncio.sleep(delay)
        headers = {"Content-Type": "application/json", **signer.headers(job.request_id, body)}
        outcome: str
        try:
            response = await client.post(url, content=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        else:
            outcome = str(response.status_code)
        accepted = outcome.isdigit() and 200 <= int(outcome) < 300
        job.webhook_attempts.append(
            {"attempt": attempt, "outcome": outcome, "at": round(time.time(), 3)}
        )
        if accepted:
            return True
        logger.info("webhook for %s failed (attempt %d): %s", job.request_id, attempt, outcome)
    return False
