"""The ``emulator`` command: run the emulator in the foreground until Ctrl-C.

``pika-tasks emulator --port 8000`` (or ``python -m pika_tasks.emulator``)
serves fal's queue API on 127.0.0.1:8000 and prints the environment
variables that point clients at it.

Example:
    >>> import typer
    >>> from pika_tasks.emulator import register_command
    >>> app = typer.Typer()
    >>> register_command(app)
    >>> [command.name for command in app.registered_commands]
    ['emulator']
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from pika_tasks.emulator._config import EmulatorConfig
from pika_tasks.emulator._rules import FaultRule
from pika_tasks.emulator._server import EmulatorServer

_FAULTS = "Faults"
_JOBS = "Jobs"
_TLS = "TLS"


def connection_help(server: EmulatorServer, *, key_required: bool) -> str:
    """The text printed at start: the URL and the variables to set in a client's shell."""
    url = server.url
    host_port = url.split("://", 1)[1]
    key_line = (
        "export FAL_KEY=<the value given to --require-key>"
        if key_required
        else "export FAL_KEY=any-value        # no key is checked"
    )
    lines = [
        f"Pika 2.2 emulator of fal's queue listening on {url}",
        f"  stats: {url}/_emulator/stats",
        "",
        "Point pika-tasks at it:",
        f"  export PIKA_QUEUE_URL={url}",
        f"  export PIKA_STORAGE_URL={url}",
        f"  {key_line}",
        "",
        "Point fal's Python client (fal-client, https only) at it:",
    ]
    if url.startswith("https://"):
        lines += [
            f"  export FAL_QUEUE_RUN_HOST={host_port}",
            f"  export SSL_CERT_FILE={server.ssl_certfile}   # trust this certificate",
        ]
    else:
        lines += [
            "  restart with --ssl-certfile CERT --ssl-keyfile KEY, then",
            f"  export FAL_QUEUE_RUN_HOST={host_port} and SSL_CERT_FILE=CERT",
        ]
    lines += [
        "",
        "Point fal's JavaScript client (@fal-ai/client) at it:",
        "  createFalClient({ requestMiddleware: async (r) =>",
        f'    ({{ ...r, url: r.url.replace("https://queue.fal.run", "{url}") }}) }})',
    ]
    if url.startswith("https://"):
        lines.append(f"  and run node with NODE_EXTRA_CA_CERTS={server.ssl_certfile}")
    lines += ["", "Press Ctrl-C to stop."]
    return "\n".join(lines)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def emulator(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0 picks a free one).")] = 8000,
    runners: Annotated[
        int, typer.Option(help="Jobs IN_PROGRESS at once.", rich_help_panel=_JOBS)
    ] = 2,
    job_seconds: Annotated[
        float, typer.Option(help="Seconds a job stays IN_PROGRESS.", rich_help_panel=_JOBS)
    ] = 3.0,
    job_jitter: Annotated[
        float, typer.Option(help="+- fraction of --job-seconds.", rich_help_panel=_JOBS)
    ] = 0.0,
    seed: Annotated[
        int, typer.Option(help="Seed of every random decision.", rich_help_panel=_JOBS)
    ] = 0,
    fps: Annotated[
        int, typer.Option(help="Frame rate of rendered videos.", rich_help_panel=_JOBS)
    ] = 24,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast", help="Load-test mode: render each distinct video once.", rich_help_panel=_JOBS
        ),
    ] = False,
    require_key: Annotated[
        str | None,
        typer.Option(
            "--require-key",
            metavar="KEY",
            help="Require 'Authorization: Key KEY' (401 otherwise).",
        ),
    ] = None,
    error_rate_5xx: Annotated[
        float, typer.Option(help="Fraction of answers replaced by 503.", rich_help_panel=_FAULTS)
    ] = 0.0,
    error_rate_429: Annotated[
        float, typer.Option(help="Fraction of answers replaced by 429.", rich_help_panel=_FAULTS)
    ] = 0.0,
    drop_download_rate: Annotated[
        float, typer.Option(help="Fraction of video downloads cut.", rich_help_panel=_FAULTS)
    ] = 0.0,
    job_failure_rate: Annotated[
        float, typer.Option(help="Fraction of jobs that fail.", rich_help_panel=_FAULTS)
    ] = 0.0,
    runner_failure_rate: Annotated[
        float,
        typer.Option(help="Fraction of jobs re-queued once.", rich_help_panel=_FAULTS),
    ] = 0.0,
    result_ttl_seconds: Annotated[
        float | None,
        typer.Option(help="Results and videos expire after this.", rich_help_panel=_FAULTS),
    ] = None,
    retry_after_seconds: Annotated[
        float, typer.Option(help="Retry-After of a 429.", rich_help_panel=_FAULTS)
    ] = 1.0,
    fault_route: Annotated[
        list[str] | None,
        typer.Option(
            help="Route the 5xx/429 rates apply to (repeatable; default: queue routes "
            "and file downloads).",
            rich_help_panel=_FAULTS,
        ),
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            metavar="ROUTE=FAULT[:N|:all][:queued]",
            help="Answer ROUTE with FAULT (an error type such as runner_disconnected, "
            "user_timeout, rate_limited, gateway_502) N times (repeatable).",
            rich_help_panel=_FAULTS,
        ),
    ] = None,
    webhook_retry_span: Annotated[
        float,
        typer.Option(
            help="Seconds over which 10 webhook retries spread (fal: 7200).",
            rich_help_panel=_JOBS,
        ),
    ] = 7200.0,
    min_video_bytes: Annotated[
        int, typer.Option(help="Pad each MP4 to at least this size.", rich_help_panel=_JOBS)
    ] = 0,
    keepalive_seconds: Annotated[
        float, typer.Option(help="Status stream keep-alive interval.", rich_help_panel=_JOBS)
    ] = 15.0,
    cancel_running: Annotated[
        str,
        typer.Option(
            help="What a cancelled running job does: stop or finish.", rich_help_panel=_JOBS
        ),
    ] = "stop",
    ssl_certfile: Annotated[
        Path | None, typer.Option(help="PEM certificate: serve https.", rich_help_panel=_TLS)
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option(help="PEM key of the certificate.", rich_help_panel=_TLS)
    ] = None,
) -> None:
    """Run the offline emulator of fal's queue (Pika 2.2 image-to-video) until Ctrl-C."""
    if cancel_running not in ("stop", "finish"):
        raise typer.BadParameter("--cancel-running must be 'stop' or 'finish'")
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise typer.BadParameter("give both --ssl-certfile and --ssl-keyfile, or neither")
    try:
        config = EmulatorConfig(
            runners=runners,
            job_seconds=job_seconds,
            job_jitter=job_jitter,
            seed=seed,
            fps=fps,
            fast=fast,
            require_key=require_key,
            error_rate_5xx=error_rate_5xx,
            error_rate_429=error_rate_429,
            drop_download_rate=drop_download_rate,
            job_failure_rate=job_failure_rate,
            runner_failure_rate=runner_failure_rate,
            result_ttl_seconds=result_ttl_seconds,
            retry_after_seconds=retry_after_seconds,
            fault_routes=frozenset(fault_route) if fault_route else None,
            min_video_bytes=min_video_bytes,
            keepalive_seconds=keepalive_seconds,
            cancel_running="finish" if cancel_running == "finish" else "stop",
            faults=tuple(FaultRule.parse(text) for text in fault or ()),
            webhook_retry_span=webhook_retry_span,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    server = EmulatorServer(
        config, host=host, port=port, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile
    )
    server.start()
    typer.echo(connection_help(server, key_required=require_key is not None))
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while server.running:
            server.wait(0.5)
    except KeyboardInterrupt:
        typer.echo("Stopping.")
    finally:
        server.stop()


def register_command(app: typer.Typer) -> None:
    """Add the ``emulator`` command to ``app``."""
    app.command("emulator")(emulator)
