"""Drives fal's official Python client (``fal-client``, unchanged) for the contract tests.

One JSON command per line on stdin, one JSON answer per line on stdout::

    {"op": "submit", "args": {...}}  ->  {"ok": <what the client returned>}
                                     or  {"error": <the client's error, described>}

fal-client reads its queue host from ``FAL_QUEUE_RUN_HOST`` when it is
imported and speaks https only, hence a process of its own with
``FAL_QUEUE_RUN_HOST``, ``SSL_CERT_FILE`` (trusting the emulator) and ``FAL_KEY`` set.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from typing import Any

import fal_client

ENDPOINT = "fal-ai/pika/v2.2/image-to-video"

client = fal_client.SyncClient()


def describe_error(error: BaseException) -> dict[str, Any]:
    """The error as the contract tests look at it."""
    described: dict[str, Any] = {"class": type(error).__name__, "message": str(error)}
    if isinstance(error, fal_client.FalClientHTTPError):
        described.update(
            status_code=error.status_code,
            error_type=error.error_type,
            request_id_header=error.response_headers.get("x-fal-request-id"),
            body=error.response.text[:2000],
        )
    return described


def describe_status(status: fal_client.Status) -> dict[str, Any]:
    """A status as its class and fields (logs counted)."""
    fields = dataclasses.asdict(status)
    logs = fields.pop("logs", None)
    return {"class": type(status).__name__, "logs": None if logs is None else len(logs), **fields}


def submit(arguments: dict[str, Any]) -> dict[str, Any]:
    handle = client.submit(ENDPOINT, arguments)
    return {
        "request_id": handle.request_id,
        "status_url": handle.status_url,
        "response_url": handle.response_url,
        "cancel_url": handle.cancel_url,
    }


def subscribe(arguments: dict[str, Any], with_logs: bool) -> dict[str, Any]:
    enqueued: list[str] = []
    updates: list[dict[str, Any]] = []
    result = client.subscribe(
        ENDPOINT,
        arguments,
        with_logs=with_logs,
        on_enqueue=enqueued.append,
        on_queue_update=lambda status: updates.append(describe_status(status)),
    )
    return {"enqueued": enqueued, "updates": updates, "result": result}


def status(request_id: str, with_logs: bool) -> dict[str, Any]:
    return describe_status(client.status(ENDPOINT, request_id, with_logs=with_logs))


def result(request_id: str) -> Any:
    return client.result(ENDPOINT, request_id)


def cancel(request_id: str) -> None:
    client.cancel(ENDPOINT, request_id)


OPS: dict[str, Callable[..., Any]] = {
    "submit": submit,
    "subscribe": subscribe,
    "status": status,
    "result": result,
    "cancel": cancel,
}


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        try:
            answer = {"ok": OPS[command["op"]](**command.get("args", {}))}
        except Exception as error:
            answer = {"error": describe_error(error)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
