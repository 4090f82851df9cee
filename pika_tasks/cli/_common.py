"""What the commands share: consoles, exit codes, option types and parsing helpers."""

from __future__ import annotations

import json
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from pika_tasks.manifest import RowDefaults
from pika_tasks.models import DURATIONS, RESOLUTIONS

#: Progress, messages and errors go to stderr; results (tables, JSON) to stdout.
console = Console(stderr=True)
stdout = Console()

EXIT_OK = 0
"""Every row succeeded (``run``), every row is valid (``estimate``)."""
EXIT_ROWS_FAILED = 1
"""Some rows failed or are invalid, or the budget was exceeded."""
EXIT_USAGE = 2
"""A bad option, a missing key, an unreadable manifest or output."""

OPTIONS_PANEL = "Row defaults"
STORAGE_PANEL = "Storage"

Manifest = Annotated[
    str, typer.Argument(help="Manifest (CSV, TSV, JSONL, JSON, Parquet) at any fsspec URL.")
]
Prompt = Annotated[
    str | None, typer.Option(help="Prompt for rows without one.", rich_help_panel=OPTIONS_PANEL)
]
PromptSuffix = Annotated[
    str, typer.Option(help="Text appended to every prompt.", rich_help_panel=OPTIONS_PANEL)
]
NegativePrompt = Annotated[
    str | None,
    typer.Option(help="Negative prompt for rows without one.", rich_help_panel=OPTIONS_PANEL),
]
ResolutionOption = Annotated[
    str | None,
    typer.Option(help="720p or 1080p, for rows without one.", rich_help_panel=OPTIONS_PANEL),
]
DurationOption = Annotated[
    int | None,
    typer.Option(help="5 or 10 seconds, for rows without one.", rich_help_panel=OPTIONS_PANEL),
]
Seed = Annotated[
    int | None, typer.Option(help="Seed for rows without one.", rich_help_panel=OPTIONS_PANEL)
]
StorageOptions = Annotated[
    str | None,
    typer.Option(
        help="fsspec storage options for the manifest and images, as JSON.",
        rich_help_panel=STORAGE_PANEL,
    ),
]
OutputStorageOptions = Annotated[
    str | None,
    typer.Option(
        help="fsspec storage options for the output, as JSON (default: --storage-options).",
        rich_help_panel=STORAGE_PANEL,
    ),
]
MaxSpend = Annotated[
    float | None,
    typer.Option(
        "--max-spend-usd",
        min=0,
        metavar="USD",
        help="Cap on the spend at list prices (see PIKA_PRICE_USD_*).",
    ),
]
ResubmitUnknown = Annotated[
    bool,
    typer.Option(
        "--resubmit-unknown",
        help="Submit again rows whose earlier submit may have reached fal unrecorded "
        "(may pay twice).",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON to stdout instead of tables.")]


def fail_usage(message: str) -> NoReturn:
    """Print ``message`` as an error and exit with :data:`EXIT_USAGE`."""
    console.print(f"[red]Error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)


def json_option(name: str, value: str | None) -> dict[str, Any] | None:
    """Parse a JSON object option such as ``--storage-options``; exit 2 when it is not one.

    Example:
        >>> json_option("--storage-options", '{"anon": true}')
        {'anon': True}
    """
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        fail_usage(f"{name} must be a JSON object: {error}")
    if not isinstance(parsed, dict):
        fail_usage(f"{name} must be a JSON object, not {value!r}")
    return parsed


def row_defaults(
    *,
    prompt: str | None,
    prompt_suffix: str,
    negative_prompt: str | None,
    resolution: str | None,
    duration: int | None,
    seed: int | None,
) -> RowDefaults:
    """The row defaults the options give; exit 2 on a bad value.

    Example:
        >>> row_defaults(prompt=None, prompt_suffix="", negative_prompt=None,
        ...              resolution="1080p", duration=10, seed=None).resolution
        '1080p'
    """
    if resolution is not None and resolution not in RESOLUTIONS:
        fail_usage(f"--resolution must be 720p or 1080p, not {resolution!r}")
    if duration is not None and duration not in DURATIONS:
        fail_usage(f"--duration must be 5 or 10, not {duration}")
    values: dict[str, Any] = {
        "prompt": prompt,
        "prompt_suffix": prompt_suffix,
        "negative_prompt": negative_prompt,
        "resolution": resolution,
        "duration": duration,
        "seed": seed,
    }
    try:
        return RowDefaults.model_validate(values)
    except ValueError as error:
        fail_usage(f"bad row default: {error}")
