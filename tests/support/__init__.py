"""What the tests share: one way to wait, to point at an emulator, to run and read a batch.

Import from here (``from support import wait_until, point_at, run_batch``);
the modules behind it are private.  Helpers that serve one suite alone stay
in that suite's ``*_support.py``.
"""

from support._batches import IMAGES, report_lines, run_batch, write_manifest
from support._handles import handle_at
from support._media import noise_png, png_bytes, probe_video, stand_in_check, write_png
from support._network import FtpBanner, free_port, ftp_banner
from support._pointing import KEY, QUICK_WAITS, point_at, process_env, queue_env, settings_for
from support._prefect_api import settled_task_runs
from support._processes import explain, pika, pika_command
from support._s3 import FAKE_AWS, s3_bucket, s3_server
from support._stores import CountingMemoryFileSystem
from support._waiting import wait_until, wait_until_async

__all__ = [
    "FAKE_AWS",
    "IMAGES",
    "KEY",
    "QUICK_WAITS",
    "CountingMemoryFileSystem",
    "FtpBanner",
    "explain",
    "free_port",
    "ftp_banner",
    "handle_at",
    "noise_png",
    "pika",
    "pika_command",
    "png_bytes",
    "point_at",
    "probe_video",
    "process_env",
    "queue_env",
    "report_lines",
    "run_batch",
    "s3_bucket",
    "s3_server",
    "settings_for",
    "settled_task_runs",
    "stand_in_check",
    "wait_until",
    "wait_until_async",
    "write_manifest",
    "write_png",
]
