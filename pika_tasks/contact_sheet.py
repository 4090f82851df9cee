"""Contact sheets: the first, middle and last frame of each video, one labelled line a video.

A contact sheet lets a person see a batch's videos without downloading them:
:func:`poster_frames` decodes one video (PyAV) into three small thumbnails,
and :func:`contact_sheet` lays the lines out, labels each with its row, and
encodes one JPEG no larger than :data:`MAX_SHEET_BYTES`.  The batch flow puts
that JPEG into its summary artifact as a ``data:`` URI (:func:`markdown_image`),
and ``pika-tasks report OUTPUT --contact-sheet sheet.jpg`` writes the same
picture for an earlier run.  Nothing here knows Prefect.

A sheet shows at most :data:`SHEET_ROWS` videos: those of the rows with the
lowest row numbers among the rows that produced a video.

Example:
    >>> import io
    >>> from PIL import Image
    >>> from pika_tasks.emulator._motion import choose_motion
    >>> from pika_tasks.emulator._render import RenderSpec, render_video
    >>> spec = RenderSpec(width=320, height=180, fps=2, duration=5)
    >>> video = render_video(Image.new("RGB", (64, 48), "teal"), spec, choose_motion("", "", 0))
    >>> line = poster_frames(io.BytesIO(video), "1 · cat")
    >>> len(line.frames), line.frames[0].size
    (3, (160, 90))
    >>> sheet = contact_sheet([line])
    >>> picture = Image.open(io.BytesIO(sheet))
    >>> picture.format, picture.size, len(sheet) <= MAX_SHEET_BYTES
    ('JPEG', (496, 116), True)
    >>> sheet_labels(sheet)
    ['1 · cat']
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import av
from PIL import Image, ImageDraw, ImageFont

from pika_tasks.storage import filesystem, protocols_of, read_bytes

__all__ = [
    "MAX_SHEET_BYTES",
    "SHEET_ROWS",
    "PosterFrames",
    "contact_sheet",
    "markdown_image",
    "poster_frames",
    "poster_frames_at",
    "sheet_label",
    "sheet_labels",
]

SHEET_ROWS = 12
"""Videos on one sheet at most."""
MAX_SHEET_BYTES = 300_000
"""A sheet's JPEG never exceeds this (about 400 KB once base64-encoded in markdown)."""
THUMB_SIZE = (160, 90)
"""Each frame's cell: a 16:9 thumbnail; other shapes are letterboxed into it."""

_GAP = 4
_LABEL_HEIGHT = 18
_BACKGROUND = (24, 24, 24)
_LETTERBOX = (0, 0, 0)
_TEXT = (235, 235, 235)
_COMMENT_PREFIX = "pika-tasks contact sheet: "
# Tried in turn until the sheet fits MAX_SHEET_BYTES; then the sheet is scaled down.
_QUALITIES = (80, 65, 50, 35)

VideoSource = str | Path | bytes | IO[bytes]
"""A video: a local path, its bytes, or a readable binary file."""


@dataclass(frozen=True)
class PosterFrames:
    """One line of a contact sheet: a video's first, middle and last frame, and its label.

    Attributes:
        label: the text over the line (e.g. ``"12 · cat"``: row number and id).
        frames: the thumbnails, each :data:`THUMB_SIZE`.
    """

    label: str
    frames: tuple[Image.Image, ...]


def _thumbnail(image: Image.Image) -> Image.Image:
    """``image`` letterboxed into a :data:`THUMB_SIZE` cell."""
    image = image.convert("RGB")
    image.thumbnail(THUMB_SIZE, Image.Resampling.BILINEAR)
    cell = Image.new("RGB", THUMB_SIZE, _LETTERBOX)
    cell.paste(image, ((THUMB_SIZE[0] - image.width) // 2, (THUMB_SIZE[1] - image.height) // 2))
    return cell


def poster_frames(video: VideoSource, label: str) -> PosterFrames:
    """Decode ``video`` into its first, middle and last frame, as thumbnails.

    One sequential pass over the frames (a few hundred at most for a 10 s
    clip); only the three kept frames are converted to pictures.  CPU work:
    call it from a worker thread.

    Args:
        video: the MP4, as a local path, bytes or a readable binary file.
        label: the line's label.

    Raises:
        ValueError: the file has no video stream or no frame.

    Example:
        >>> poster_frames(b"not a video", "x")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: cannot decode x: ...
    """
    source: Any = io.BytesIO(video) if isinstance(video, bytes) else video
    if isinstance(source, Path):
        source = str(source)
    try:
        with av.open(source, mode="r") as container:
            if not container.streams.video:
                raise ValueError(f"cannot decode {label}: no video stream")
            stream = container.streams.video[0]
            kept = _keep_three(container.decode(stream), int(stream.frames or 0))
    except (av.FFmpegError, OSError) as error:
        raise ValueError(f"cannot decode {label}: {error}") from error
    if not kept:
        raise ValueError(f"cannot decode {label}: no frame")
    return PosterFrames(label, tuple(kept))


def poster_frames_at(
    url: str, label: str, storage_options: dict[str, Any] | None = None
) -> PosterFrames:
    """:func:`poster_frames` of the video at ``url`` (any fsspec URL).

    A local file is decoded in place; any other is read in one request
    (``read_bytes``), since the decoder seeks and a store's file object would
    fetch a block per seek.

    >>> poster_frames_at("memory://sheet-doc/none.mp4", "x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...
    """
    fs, path = filesystem(url, storage_options)
    if "file" in protocols_of(fs):
        return poster_frames(str(path), label)
    return poster_frames(read_bytes(url, storage_options), label)


def sheet_label(row_number: int, row_id: str | None) -> str:
    """The label of a row's line: its row number and id.

    >>> sheet_label(12, "cat")
    '12 · cat'
    """
    return f"{row_number} · {row_id}" if row_id else str(row_number)


def _keep_three(frames: Iterable[Any], count: int) -> list[Image.Image]:
    """Thumbnails of the first, middle and last of ``frames`` (``count`` of them, 0: unknown)."""
    if count > 0:
        wanted = {0: 0, count // 2: 1, count - 1: 2}
        kept: dict[int, Image.Image] = {}
        last: Any = None
        for index, frame in enumerate(frames):
            last = frame
            if index in wanted:
                kept[wanted[index]] = _thumbnail(frame.to_image())
        # The container's count can exceed what decodes: the last decoded frame ends the line.
        if last is not None and 2 not in kept:
            kept[2] = _thumbnail(last.to_image())
        return [kept[slot] for slot in sorted(kept)]
    # No count in the container: every frame is kept, small, until the middle is known.
    thumbs = [_thumbnail(frame.to_image()) for frame in frames]
    if not thumbs:
        return []
    return [thumbs[0], thumbs[len(thumbs) // 2], thumbs[-1]]


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (AttributeError, TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """``text``, cut with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _layout(lines: Sequence[PosterFrames]) -> Image.Image:
    columns = max((len(line.frames) for line in lines), default=3)
    width = columns * THUMB_SIZE[0] + (columns + 1) * _GAP
    line_height = _LABEL_HEIGHT + THUMB_SIZE[1] + _GAP
    sheet = Image.new("RGB", (width, len(lines) * line_height + _GAP), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(12)
    for number, line in enumerate(lines):
        top = _GAP + number * line_height
        label = _fit_text(draw, line.label, font, width - 2 * _GAP)
        draw.text((_GAP, top + 2), label, fill=_TEXT, font=font)
        for column, frame in enumerate(line.frames):
            left = _GAP + column * (THUMB_SIZE[0] + _GAP)
            sheet.paste(frame, (left, top + _LABEL_HEIGHT))
    return sheet


def contact_sheet(lines: Sequence[PosterFrames], max_bytes: int = MAX_SHEET_BYTES) -> bytes:
    """One JPEG of ``lines``, one labelled line of frames each, at most ``max_bytes``.

    The JPEG's comment holds the labels in order (:func:`sheet_labels` reads
    them back), so a program can tell which rows a sheet shows.  A sheet over
    ``max_bytes`` is encoded again at a lower quality, then scaled down.

    Args:
        lines: the videos' poster frames, top to bottom.
        max_bytes: the most the JPEG may weigh.

    Raises:
        ValueError: there is no line.
    """
    if not lines:
        raise ValueError("a contact sheet needs at least one video")
    sheet = _layout(lines)
    comment = (_COMMENT_PREFIX + json.dumps([line.label for line in lines])).encode("utf-8")
    while True:
        for quality in _QUALITIES:
            buffer = io.BytesIO()
            sheet.save(buffer, "JPEG", quality=quality, optimize=True, comment=comment)
            if buffer.tell() <= max_bytes:
                return buffer.getvalue()
        if sheet.width <= 16:
            raise ValueError(f"a contact sheet cannot fit {max_bytes} bytes")
        sheet = sheet.resize((sheet.width * 3 // 4, max(1, sheet.height * 3 // 4)))


def sheet_labels(jpeg: bytes) -> list[str]:
    """The labels of a sheet's lines, top to bottom, from its JPEG comment.

    >>> sheet_labels(b"not a sheet")
    []
    """
    try:
        comment = Image.open(io.BytesIO(jpeg)).info.get("comment", b"")
    except OSError:
        return []
    text = comment.decode("utf-8", "replace") if isinstance(comment, bytes) else str(comment)
    if not text.startswith(_COMMENT_PREFIX):
        return []
    labels = json.loads(text.removeprefix(_COMMENT_PREFIX))
    return [str(label) for label in labels]


def markdown_image(jpeg: bytes, alt: str = "contact sheet") -> str:
    """The sheet as an ordinary markdown image with a ``data:`` URI.

    >>> markdown_image(b"\\xff\\xd8")
    '![contact sheet](data:image/jpeg;base64,/9g=)'
    """
    return f"![{alt}](data:image/jpeg;base64,{base64.b64encode(jpeg).decode('ascii')})"
