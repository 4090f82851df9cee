"""``pika-tasks estimate``: check a manifest and price its run, sending nothing to fal."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from pika_tasks.cli._common import (
    EXIT_OK,
    EXIT_ROWS_FAILED,
    DurationOption,
    JsonFlag,
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
    fail_usage,
    json_option,
    row_defaults,
    stdout,
)
from pika_tasks.manifest import ManifestError

EXAMPLES = """\
[bold]Examples[/bold]

  What would this manifest cost, and is every row valid?
  [cyan]pika-tasks estimate examples/manifest.csv[/cyan]

  What would a re-run into out/example still cost (done rows are free)?
  [cyan]pika-tasks estimate examples/manifest.csv --out out/example[/cyan]

  As JSON, failing (exit 1) above $10:
  [cyan]pika-tasks estimate s3://bucket/in/manifest.csv --max-spend-usd 10 --json[/cyan]

  Exit codes: 0 every row valid (and within --max-spend-usd), 1 invalid rows or
  over the cap, 2 usage error or unreadable manifest.
"""


def estimate(
    manifest: Manifest,
    out: Annotated[
        str | None,
        typer.Option(
            "--out", "-o", help="Output folder of the run: count rows done or submitted there."
        ),
    ] = None,
    json_output: JsonFlag = False,
    max_spend_usd: MaxSpend = None,
    prompt: Prompt = None,
    prompt_suffix: PromptSuffix = "",
    negative_prompt: NegativePrompt = None,
    resolution: ResolutionOption = None,
    duration: DurationOption = None,
    seed: Seed = None,
    storage_options: StorageOptions = None,
    output_storage_options: OutputStorageOptions = None,
    resubmit_unknown: ResubmitUnknown = False,
    allow_private_image_urls: Annotated[
        bool,
        typer.Option(
            "--allow-private-image-urls",
            help="Accept http(s) images on private addresses (as run --local does).",
        ),
    ] = False,
    max_concurrency: Annotated[int, typer.Option(min=1, help="Images read at once.")] = 8,
    image_root: Annotated[
        str | None,
        typer.Option(
            "--image-root",
            help="Refuse local images outside this folder (after resolving .. and links).",
        ),
    ] = None,
) -> None:
    """Check every row and image of MANIFEST and price the run, without submitting anything.

    Every row is validated and every image read and checked, as the run does
    before paying; how each image would reach fal (URL, inline, upload) is
    worked out without uploading it. Prints the rows per resolution and
    duration and their cost at list prices (PIKA_PRICE_USD_* override them);
    with --out, how many rows are already done or would be re-attached to an
    earlier request, which costs nothing.
    """
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

    from pika_tasks.cli._tables import print_estimate
    from pika_tasks.estimate import estimate_batch

    try:
        result = asyncio.run(
            estimate_batch(
                manifest,
                out,
                defaults=defaults,
                storage_options=options,
                output_storage_options=out_options,
                allow_private_image_urls=allow_private_image_urls,
                resubmit_unknown=resubmit_unknown,
                max_spend_usd=max_spend_usd,
                max_concurrency=max_concurrency,
                image_root=image_root,
            )
        )
    except ManifestError as error:
        fail_usage(str(error))
    except ValueError as error:  # a bad PIKA_* setting
        fail_usage(f"bad configuration: {error}")
    if json_output:
        typer.echo(result.model_dump_json(indent=2))
    else:
        print_estimate(stdout, result)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_ROWS_FAILED)
