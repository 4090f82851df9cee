"""``pika-tasks run``: the batch flow with a live progress display and a summary."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console

from pika_tasks.cli._common import (
    EXIT_OK,
    EXIT_ROWS_FAILED,
    EXIT_USAGE,
    DurationOption,
    Manifest,
    MaxSpend,
    NegativePrompt,
    OutputStorageOptions,
    Prompt,
    PromptSuffix,
    ResolutionOption,
    ResubmitUnknown,
    Seed,
    StorageOptions,
    console,
    fail_usage,
    json_option,
    row_defaults,
    stdout,
)
from pika_tasks.errors import MissingKeyError, PikaError
from pika_tasks.manifest import ManifestError, iter_manifest
from pika_tasks.settings import PikaSettings

# The local emulator does not check keys; this one only satisfies the client.
LOCAL_KEY = "local-emulator"

EXAMPLES = """\
[bold]Examples[/bold]

  Offline, against the built-in emulator (no key, no network):
  [cyan]pika-tasks run examples/manifest.csv --out out/example --local[/cyan]

  On fal, 1080p for rows that name no resolution, at most $25:
  [cyan]FAL_KEY=... pika-tasks run s3://bucket/in/manifest.csv --out s3://bucket/out \\
      --resolution 1080p --max-spend-usd 25[/cyan]

  Quiet, for scripts and cron (the summary only; the run's logs are in Prefect):
  [cyan]pika-tasks run in/manifest.csv --out out -q[/cyan]

  Exit codes: 0 every row succeeded, 1 some rows failed (or the run was refused
  for its budget), 2 usage or configuration error.
"""


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


def run(
    manifest: Manifest,
    out: Annotated[str, typer.Option("--out", "-o", help="Output folder (any fsspec URL).")],
    local: Annotated[
        bool, typer.Option("--local", help="Run offline against the built-in emulator (no key).")
    ] = False,
    max_spend_usd: MaxSpend = None,
    prompt: Prompt = None,
    prompt_suffix: PromptSuffix = "",
    negative_prompt: NegativePrompt = None,
    resolution: ResolutionOption = None,
    duration: DurationOption = None,
    seed: Seed = None,
    max_concurrency: Annotated[int, typer.Option(min=1, help="Rows in flight at once.")] = 4,
    storage_options: StorageOptions = None,
    output_storage_options: OutputStorageOptions = None,
    wait_timeout: Annotated[
        float | None, typer.Option(min=0, help="Seconds to wait for one job.")
    ] = None,
    allow_partial: Annotated[
        bool, typer.Option(help="End the flow Completed even when some rows failed.")
    ] = False,
    resubmit_unknown: ResubmitUnknown = False,
    job_seconds: Annotated[
        float, typer.Option(min=0, help="With --local: emulated job duration.")
    ] = 2.0,
    max_failures: Annotated[
        int, typer.Option(min=0, help="Failed rows listed in the summary.")
    ] = 20,
    allow_private_image_urls: Annotated[
        bool,
        typer.Option(
            "--allow-private-image-urls",
            help="Read images on private addresses, also through --storage-options "
            "(e.g. a MinIO on the LAN); --local implies it.",
        ),
    ] = False,
    image_root: Annotated[
        str | None,
        typer.Option(
            "--image-root",
            help="Refuse local images outside this folder (after resolving .. and links).",
        ),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Print Prefect's run log lines too (they always go to Prefect)."
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print the summary only (and errors that stop the run)."
        ),
    ] = False,
) -> None:
    """Generate a video for every row of MANIFEST into --out.

    Rows already done there are skipped and rows submitted by an earlier run
    are re-attached to their request, both for free. A live display shows
    the rows queued at fal (and the oldest one's queue position), running and
    downloading, rows done, failed and left, the time left and the spend so
    far, with one line per finished row above it; a summary and the failed
    rows with their reasons follow. Prefect's run logs go to the Prefect API;
    -v prints them too, -q prints the summary only. With
    --max-spend-usd the run starts nothing when the rows to submit cost more
    at list prices, and never submits a row that would take the spend past
    the cap.
    """
    if verbose and quiet:
        fail_usage("--verbose and --quiet cannot be used together")
    defaults = row_defaults(
        prompt=prompt,
        prompt_suffix=prompt_suffix,
        negative_prompt=negative_prompt,
        resolution=resolution,
        duration=duration,
        seed=seed,
    )
    options = json_option("--storage-options", storage_options)
    out_options = json_option("--output-storage-options", output_storage_options)
    try:
        settings = PikaSettings()
    except ValueError as error:  # a bad FAL_KEY / PIKA_* value
        fail_usage(f"bad configuration: {error}")
    if not local:
        try:
            settings.require_key()
        except MissingKeyError as error:
            fail_usage(str(error))
    try:
        # The first row only: a manifest that cannot be read at all is a usage error;
        # its rows are checked as the run streams them.
        next(iter_manifest(manifest, defaults=defaults, storage_options=options), None)
    except ManifestError as error:
        fail_usage(str(error))

    from prefect.client.schemas.objects import State

    from pika_tasks.cli._live import LiveProgress, TerminalLogs, Verbosity
    from pika_tasks.cli._tables import print_failures, run_summary
    from pika_tasks.flows.image_to_video import image_to_video_batch
    from pika_tasks.pipeline import BatchLimits, BatchResult, Location, read_report

    parameters: dict[str, Any] = {
        "manifest": Location(url=manifest, storage_options=options or {}),
        "output": Location(
            url=out, storage_options=(out_options if out_options is not None else options) or {}
        ),
        "defaults": defaults,
        "limits": BatchLimits(
            max_concurrency=max_concurrency,
            max_spend_usd=max_spend_usd,
            wait_timeout=wait_timeout,
        ),
        "fail_on_partial": not allow_partial,
        "resubmit_unknown": resubmit_unknown,
        "image_root": image_root,
        # The local emulator serves uploaded images on loopback.
        "allow_private_image_urls": local or allow_private_image_urls,
    }

    async def run_flow(live: LiveProgress | None) -> State[Any]:
        state: State[Any] = await image_to_video_batch(
            **parameters, on_progress=live, return_state=True
        )
        return state

    emulated = local_emulator(job_seconds) if local else contextlib.nullcontext()
    # Log lines are printed through the display's console: as text, never as markup.
    shown = Console(stderr=True, markup=False)
    verbosity: Verbosity = "verbose" if verbose else "quiet" if quiet else "normal"
    with emulated, TerminalLogs(shown, verbosity):
        if quiet:
            state = asyncio.run(run_flow(None))
        else:
            with LiveProgress(shown) as live:
                state = asyncio.run(run_flow(live))
    result = state.result(raise_on_failure=False)
    if not isinstance(result, BatchResult):
        console.print(f"[red]The run did not finish:[/red] {state.message or result}")
        usage = isinstance(result, MissingKeyError | ManifestError)
        raise typer.Exit(EXIT_USAGE if usage else EXIT_ROWS_FAILED)
    try:
        report = read_report(result.report_url, parameters["output"].storage_options)
    except PikaError as error:
        console.print(f"[yellow]The run report could not be read back: {error}[/yellow]")
    else:
        stdout.print(run_summary(report))
        print_failures(stdout, report, max_failures)
    stdout.print(f"Report: {result.report_url}", soft_wrap=True, highlight=False)
    if state.is_failed():
        console.print(f"[red]The run failed:[/red] {state.message}", soft_wrap=True)
    raise typer.Exit(EXIT_ROWS_FAILED if result.failed else EXIT_OK)
