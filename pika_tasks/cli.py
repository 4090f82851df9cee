"""The ``pika-tasks`` command.

Example:
    ``pika-tasks run examples/manifest.csv --out out/example --local`` runs the
    batch flow offline against the built-in emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console

from pika_tasks.errors import MissingKeyError
from pika_tasks.settings import PikaSettings

app = typer.Typer(
    name="pika-tasks",
    help="Turn folders of still images into videos with Pika 2.2 on fal, orchestrated by Prefect.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)

EXIT_OK, EXIT_ROWS_FAILED, EXIT_USAGE = 0, 1, 2
# The local emulator does not check keys; this one only satisfies the client.
LOCAL_KEY = "local-emulator"


@contextlib.contextmanager
def local_emulator(job_seconds: float) -> Iterator[str]:
    """Start the emulator on a free loopback port and point the client at it."""
    from pika_tasks.emulator import EmulatorServer

    saved = {
        name: os.environ.get(name) for name in ("PIKA_QUEUE_URL", "PIKA_STORAGE_URL", "FAL_KEY")
    }
    with EmulatorServer(job_seconds=job_seconds) as server:
        os.environ.update(
            {"PIKA_QUEUE_URL": server.url, "PIKA_STORAGE_URL": server.url, "FAL_KEY": LOCAL_KEY}
        )
        try:
            yield server.url
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@app.command()
def run(
    manifest: Annotated[
        str, typer.Argument(help="Manifest (CSV, JSONL, JSON, Parquet) at any fsspec URL.")
    ],
    out: Annotated[str, typer.Option("--out", "-o", help="Output folder (any fsspec URL).")],
    local: Annotated[
        bool, typer.Option("--local", help="Run offline against the built-in emulator (no key).")
    ] = False,
    prompt: Annotated[str | None, typer.Option(help="Prompt for rows without one.")] = None,
    prompt_suffix: Annotated[str, typer.Option(help="Text appended to every prompt.")] = "",
    negative_prompt: Annotated[
        str | None, typer.Option(help="Negative prompt for rows without one.")
    ] = None,
    resolution: Annotated[
        str | None, typer.Option(help="720p or 1080p, for rows without one.")
    ] = None,
    duration: Annotated[
        int | None, typer.Option(help="5 or 10 seconds, for rows without one.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for rows without one.")] = None,
    max_concurrency: Annotated[int, typer.Option(help="Rows in flight at once.")] = 4,
    storage_options: Annotated[
        str | None, typer.Option(help="fsspec storage options for manifest and images, as JSON.")
    ] = None,
    output_storage_options: Annotated[
        str | None, typer.Option(help="fsspec storage options for the output, as JSON.")
    ] = None,
    wait_timeout: Annotated[float | None, typer.Option(help="Seconds to wait for one job.")] = None,
    allow_partial: Annotated[
        bool, typer.Option(help="End the flow Completed even when some rows failed.")
    ] = False,
    resubmit_unknown: Annotated[
        bool,
        typer.Option(
            "--resubmit-unknown",
            help="Submit again rows whose earlier submit may have reached fal unrecorded "
            "(may pay twice).",
        ),
    ] = False,
    job_seconds: Annotated[float, typer.Option(help="With --local: emulated job duration.")] = 2.0,
) -> None:
    """Generate a video for every row of MANIFEST into --out.

    Examples:

        pika-tasks run examples/manifest.csv --out out/example --local

        FAL_KEY=... pika-tasks run s3://bucket/in/manifest.csv --out s3://bucket/out
    """
    if resolution is not None and resolution not in ("720p", "1080p"):
        console.print(f"[red]--resolution must be 720p or 1080p, not {resolution!r}[/red]")
        raise typer.Exit(EXIT_USAGE)
    if duration is not None and duration not in (5, 10):
        console.print(f"[red]--duration must be 5 or 10, not {duration}[/red]")
        raise typer.Exit(EXIT_USAGE)
    try:
        options = json.loads(storage_options) if storage_options else None
        out_options = json.loads(output_storage_options) if output_storage_options else None
    except json.JSONDecodeError as error:
        console.print(f"[red]storage options must be JSON: {error}[/red]")
        raise typer.Exit(EXIT_USAGE) from error
    if not local:
        try:
            PikaSettings().require_key()
        except MissingKeyError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(EXIT_USAGE) from error

    from prefect.client.schemas.objects import State

    from pika_tasks.flows.image_to_video import BatchResult, image_to_video_batch

    parameters: dict[str, Any] = {
        "manifest": manifest,
        "output": out,
        "prompt": prompt,
        "prompt_suffix": prompt_suffix,
        "negative_prompt": negative_prompt,
        "resolution": resolution,
        "duration": duration,
        "seed": seed,
        "max_concurrency": max_concurrency,
        "storage_options": options,
        "output_storage_options": out_options,
        "wait_timeout": wait_timeout,
        "fail_on_partial": not allow_partial,
        "resubmit_unknown": resubmit_unknown,
        # The local emulator serves uploaded images on loopback.
        "allow_private_image_urls": local,
    }

    async def run_flow() -> State[Any]:
        state: State[Any] = await image_to_video_batch(**parameters, return_state=True)
        return state

    with local_emulator(job_seconds) if local else contextlib.nullcontext():
        state = asyncio.run(run_flow())
    result = state.result(raise_on_failure=False)
    if not isinstance(result, BatchResult):
        console.print(f"[red]The run did not finish: {state.message or result}[/red]")
        raise typer.Exit(EXIT_USAGE if isinstance(result, MissingKeyError) else EXIT_ROWS_FAILED)
    console.print(
        f"{result.succeeded} succeeded, {result.failed} failed, {result.skipped} skipped; "
        f"spend ${result.spend_usd:.2f}; report {result.report_url}"
    )
    raise typer.Exit(EXIT_ROWS_FAILED if result.failed else EXIT_OK)


def _register_emulator() -> None:
    from pika_tasks.emulator.cli import register

    register(app)


def main() -> None:
    """Console-script entry point."""
    _register_emulator()
    app()
