"""An offline emulator of fal's queue API for Pika 2.2 image-to-video.

A real HTTP server that speaks fal's queue protocol (submit, status,
status stream, result, cancel, storage upload, signed webhooks) with the
headers fal's own clients read, and renders real H.264 videos from the input
image with a camera move read from the prompt.  Every infrastructure error
fal documents can be injected (:class:`FaultRule`).  It is the test backend
of pika-tasks and can be run on its own with ``pika-tasks emulator``.

Example:
    >>> import httpx
    >>> from pika_tasks.emulator import EmulatorServer
    >>> with EmulatorServer(job_seconds=0.1, fps=2) as emu:
    ...     answer = httpx.post(
    ...         f"{emu.url}/fal-ai/pika/v2.2/image-to-video",
    ...         json={"image_url": "https://example.invalid/a.png", "prompt": "pan left"},
    ...     )
    ...     answer.status_code, answer.json()["status"]
    (200, 'IN_QUEUE')
"""

from pika_tasks.emulator._app import create_app
from pika_tasks.emulator._cli import register_command
from pika_tasks.emulator._config import EmulatorConfig
from pika_tasks.emulator._rules import FaultRule
from pika_tasks.emulator._server import EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorServer", "FaultRule", "create_app", "register_command"]
