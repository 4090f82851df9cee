"""The emulator in a process of its own, with a clock on every job.

``python -m bench.emulator_proc '{"runners": 25, ...}' [CERT KEY]`` serves the
emulator on a free loopback port, prints ``{"url": ..., "pid": ...}`` on its
first line and serves until its standard input closes.

Besides the emulator's own routes it answers ``GET /_bench/jobs``: for
every job its submit, start and completion times and when its result was
first asked for, all on this machine's monotonic clock (the same clock in
every process), so that the time from completion to the result request can
be measured for any client, fal's included.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pika_tasks.emulator import EmulatorServer
from pika_tasks.emulator._engine import Engine

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# GET of a result: under the owner/app prefix (as fal serves it) or the full endpoint path.
_RESULT_PATH = re.compile(r"/fal-ai/pika(?:/v2\.2/image-to-video)?/requests/([0-9a-f-]+)/?")


class JobClock:
    """ASGI middleware: notes the first result request of each job, serves ``/_bench/jobs``."""

    def __init__(self, app: App, engine: Engine) -> None:
        self.app = app
        self.engine = engine
        self.result_at: dict[str, float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/_bench/jobs":
                await self._send_json(send, self.snapshot())
                return
            if scope["method"] == "GET":
                match = _RESULT_PATH.fullmatch(path)
                if match:
                    self.result_at.setdefault(match[1], time.monotonic())
        await self.app(scope, receive, send)

    def snapshot(self) -> dict[str, Any]:
        """Every job's timestamps (monotonic seconds) and whether it failed."""
        jobs = [
            {
                "id": job.request_id,
                "submitted_at": job.submitted_at,
                "started_at": job.started_at,
                "completed_at": job.completed_at,
                "result_at": self.result_at.get(job.request_id),
                "failed": job.error is not None,
            }
            for job in self.engine.jobs.values()
        ]
        return {"now": time.monotonic(), "jobs": jobs}

    @staticmethod
    async def _send_json(send: Send, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})


def main(argv: list[str]) -> int:
    """Serve until standard input closes."""
    config = json.loads(argv[0])
    cert, key = (argv[1], argv[2]) if len(argv) >= 3 else (None, None)
    server = EmulatorServer(ssl_certfile=cert, ssl_keyfile=key, **config)
    # Wrapped before start(): start() serves whatever ``app`` holds.
    server.app = JobClock(server.app, server.engine)  # type: ignore[assignment]
    server.start()
    print(json.dumps({"url": server.url, "pid": os.getpid()}), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
