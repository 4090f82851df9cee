"""The manifest's data: defaults, valid rows, row errors and the manifest itself."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pika_tasks.manifest._ids import check_id
from pika_tasks.models import Duration, ImageToVideoInput, Resolution

MAX_PROMPT_CHARS = 2000
"""Longest accepted prompt (and negative prompt), in characters, after the suffix is added."""

MAX_SEED = 2**32 - 1
"""Largest accepted seed: seeds are unsigned 32-bit integers, ``0..4294967295``."""

MAX_ROW_CHARS = 16 * 1024 * 1024
"""Most characters one row of a text manifest may hold (16 Mi): a longer row is refused alone.

Rows are read one at a time, so this bounds the memory one row can take.  A
CSV or TSV record, a JSON Lines line or a JSON array item over it is skipped
to its end without being held, and fails alone with field ``row``.
"""

ManifestFormat = Literal["csv", "tsv", "jsonl", "json", "parquet"]
"""The manifest formats :func:`~pika_tasks.manifest.read_manifest` reads."""


class RowDefaults(BaseModel):
    """Values for rows that leave a field empty, and a suffix added to every prompt.

    A row's own value wins, then the default here, then the API's default
    (negative prompt ``""``, resolution ``720p``, duration ``5``, no seed).

    Attributes:
        prompt: prompt of rows that have none (without it such rows are errors).
        prompt_suffix: appended to every prompt, after ``", "`` (directly when
            it already starts with ``,``, ``.`` or ``;``).
        negative_prompt: negative prompt of rows that have none.
        resolution: ``720p`` or ``1080p`` for rows that have none.
        duration: ``5`` or ``10`` for rows that have none.
        seed: seed of rows that have none, ``0..4294967295``.

    Example:
        >>> RowDefaults(prompt="slow zoom", resolution="1080p").duration is None
        True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: str | None = None
    prompt_suffix: str = ""
    negative_prompt: str | None = None
    resolution: Resolution | None = None
    duration: Duration | None = None
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)


class ManifestRow(BaseModel):
    """One valid row of a manifest, with every default applied.

    Attributes:
        row_number: the 1-based data row it came from (see :func:`read_manifest`).
        id: the row's safe, unique id; its video is ``{output}/{id}.mp4``.
        image: absolute location of the first frame: an http(s) URL, or an
            fsspec URL or absolute local path.
        prompt: the final prompt (default and suffix applied).
        negative_prompt: the final negative prompt (``""`` when none).
        resolution: ``720p`` or ``1080p``.
        duration: ``5`` or ``10`` seconds.
        seed: the seed, or None for a random one.
        metadata: the row's other columns, JSON-safe.

    Example:
        >>> row = ManifestRow(row_number=1, id="a", image="/in/a.png", prompt="waves")
        >>> row.to_input("https://cdn.example/a.png").resolution
        '720p'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    row_number: int = Field(ge=1)
    id: str
    image: str = Field(min_length=1)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    resolution: Resolution = "720p"
    duration: Duration = 5
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        # Rows also arrive from JSON (task results, run records): re-check the id.
        return check_id(value)

    def to_input(self, image_url: str) -> ImageToVideoInput:
        """The API request for this row, with ``image_url`` as the first frame.

        Args:
            image_url: what fal should fetch: see
                :func:`pika_tasks.images.deliver_image_url`.
        """
        return ImageToVideoInput(
            image_url=image_url,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            resolution=self.resolution,
            duration=self.duration,
            seed=self.seed,
        )


class RowError(BaseModel):
    """Why one row of a manifest was refused.

    Attributes:
        row_number: the 1-based data row.
        field: the column at fault (``row`` when the row as a whole is).
        reason: what is wrong, naming the allowed values where there are few.
        id: the row's id when it had a valid one, else None.

    Example:
        >>> str(RowError(row_number=7, field="resolution", reason="'4k' is not one of 720p, 1080p"))
        "row 7, field 'resolution': '4k' is not one of 720p, 1080p"
    """

    model_config = ConfigDict(frozen=True)

    row_number: int
    field: str
    reason: str
    id: str | None = None

    def __str__(self) -> str:
        return f"row {self.row_number}, field {self.field!r}: {self.reason}"


class Manifest(BaseModel):
    """A manifest, read and checked: its valid rows and one error per refused row.

    Attributes:
        url: where the manifest was read.
        base_url: the folder relative image paths were resolved against.
        format: the format it was read as.
        rows: the valid rows, in file order.
        errors: one :class:`RowError` per refused row, in file order.
    """

    url: str
    base_url: str
    format: ManifestFormat
    rows: list[ManifestRow] = Field(default_factory=list)
    errors: list[RowError] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no row was refused."""
        return not self.errors
