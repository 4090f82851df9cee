"""Contact sheets from real H.264 videos (the emulator's renderer): the grid, the labels, the
bound on the JPEG's size even for the worst pictures, and the module's examples."""

from __future__ import annotations

import doctest
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pika_tasks.contact_sheet
from pika_tasks.contact_sheet import (
    MAX_SHEET_BYTES,
    SHEET_ROWS,
    THUMB_SIZE,
    contact_sheet,
    markdown_image,
    poster_frames,
    poster_frames_at,
    sheet_label,
    sheet_labels,
)
from pika_tasks.emulator._motion import choose_motion
from pika_tasks.emulator._render import RenderSpec, render_video

FRAMES = 10


def colour_clip(colour: tuple[int, int, int], width: int = 320, height: int = 180) -> bytes:
    """An H.264 clip (libx264, as the emulator encodes) fading from ``colour`` to white,
    so that its first, middle and last frames differ in a way a test can see."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=2)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(FRAMES):
            mix = index / (FRAMES - 1)
            pixel = [round(c + (255 - c) * mix) for c in colour]
            array = np.full((height, width, 3), pixel, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def noise_clip(seed: int) -> bytes:
    """A 720p clip of random noise: the worst picture for a JPEG."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8))
    spec = RenderSpec(width=1280, height=720, fps=2, duration=5)
    return render_video(image, spec, choose_motion("zoom in", "", seed))


def test_poster_frames_are_the_first_middle_and_last() -> None:
    line = poster_frames(colour_clip((200, 0, 0)), "1 · red")
    assert [frame.size for frame in line.frames] == [THUMB_SIZE] * 3
    first, middle, last = (
        np.asarray(frame, dtype=float).mean(axis=(0, 1)) for frame in line.frames
    )
    # Red at first, then fading to white: green and blue rise through the clip.
    assert first[0] > 150 and first[1] < 40
    assert first[1] < middle[1] < last[1]
    assert last.min() > 200


def test_sheet_is_a_grid_of_labelled_lines(tmp_path: Path) -> None:
    colours = [(200, 0, 0), (0, 160, 0), (0, 0, 200)]
    lines = [
        poster_frames(colour_clip(colour), sheet_label(n, f"row-{n}"))
        for n, colour in enumerate(colours, start=1)
    ]
    jpeg = contact_sheet(lines)
    picture = Image.open(io.BytesIO(jpeg))
    assert picture.format == "JPEG"
    # Three frames a line, a 4-pixel gap around each, an 18-pixel label over each line.
    assert picture.size == (3 * THUMB_SIZE[0] + 4 * 4, 3 * (18 + THUMB_SIZE[1] + 4) + 4)
    assert sheet_labels(jpeg) == ["1 · row-1", "2 · row-2", "3 · row-3"]
    pixels = np.asarray(picture.convert("RGB"), dtype=float)
    for number, colour in enumerate(colours):
        top = 4 + number * (18 + THUMB_SIZE[1] + 4)
        label = pixels[top : top + 18, 4 : 4 + THUMB_SIZE[0]]
        assert label.max() > 150, "the label strip has text"  # light text on dark
        first = pixels[top + 18 : top + 18 + THUMB_SIZE[1], 4 : 4 + THUMB_SIZE[0]]
        channel = int(np.argmax(colour))
        assert first.mean(axis=(0, 1))[channel] > 120, f"line {number + 1} shows its own video"


def test_a_full_sheet_of_noise_stays_within_the_bound() -> None:
    clips = [noise_clip(seed) for seed in range(SHEET_ROWS)]
    started = time.perf_counter()
    lines = [poster_frames(clip, sheet_label(n, "n" * 80)) for n, clip in enumerate(clips, 1)]
    decoded = time.perf_counter() - started
    jpeg = contact_sheet(lines)
    picture = Image.open(io.BytesIO(jpeg))
    assert len(jpeg) <= MAX_SHEET_BYTES
    assert picture.width <= 3 * THUMB_SIZE[0] + 16
    assert len(sheet_labels(jpeg)) == SHEET_ROWS
    print(f"12 noise videos: {decoded / SHEET_ROWS:.3f} s each to decode, sheet {len(jpeg)} bytes")


def test_a_tight_bound_scales_the_sheet_down() -> None:
    lines = [poster_frames(noise_clip(seed), str(seed)) for seed in range(2)]
    roomy, tight = contact_sheet(lines), contact_sheet(lines, max_bytes=3_000)
    assert len(tight) <= 3_000 < len(roomy)
    assert Image.open(io.BytesIO(tight)).width < Image.open(io.BytesIO(roomy)).width
    assert sheet_labels(tight) == ["0", "1"]


def test_videos_are_read_from_any_store(tmp_path: Path) -> None:
    import fsspec

    clip = colour_clip((0, 0, 200))
    fsspec.filesystem("memory").pipe("/sheet-test/a.mp4", clip)
    local = tmp_path / "a.mp4"
    local.write_bytes(clip)
    from_memory = poster_frames_at("memory://sheet-test/a.mp4", "a")
    from_disk = poster_frames_at(str(local), "a")
    assert [f.tobytes() for f in from_memory.frames] == [f.tobytes() for f in from_disk.frames]


def test_what_is_not_a_video_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot decode x"):
        poster_frames(b"\x00" * 1000, "x")
    with pytest.raises(ValueError, match="at least one video"):
        contact_sheet([])


def test_markdown_image_is_an_ordinary_data_uri() -> None:
    text = markdown_image(b"\xff\xd8\xff")
    assert text.startswith("![contact sheet](data:image/jpeg;base64,") and text.endswith(")")


def test_examples_run() -> None:
    failures, tried = doctest.testmod(pika_tasks.contact_sheet, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
