"""Unit tests of the emulator's pure parts: config, faults, queue, motion, ranges, padding."""

from __future__ import annotations

import io

import av
import pytest
from emulator_support import sample_image

from pika_tasks.emulator import EmulatorConfig
from pika_tasks.emulator._config import DEFAULT_FAULT_ROUTES
from pika_tasks.emulator._faults import FaultPlan, unit_hash
from pika_tasks.emulator._files import StoredFile
from pika_tasks.emulator._images import ImageInputError, decode_data_uri, decode_image
from pika_tasks.emulator._motion import MAX_REACH, choose_motion, motion_kinds
from pika_tasks.emulator._options import OptionError, parse_submit_options
from pika_tasks.emulator._queue import JobQueue
from pika_tasks.emulator._render import RenderSpec, free_box_header, padding_for, render_video
from pika_tasks.emulator._responses import format_seconds, parse_range


def test_config_defaults_match_the_documented_interface() -> None:
    config = EmulatorConfig()
    assert (config.runners, config.job_seconds, config.fps, config.seed) == (2, 3.0, 24, 0)
    assert config.require_key is None and config.fast is False
    assert config.image_max_bytes == 25_000_000 and config.image_fetch_timeout == 10.0
    assert config.keepalive_seconds == 15.0 and config.retry_after_seconds == 1.0
    assert config.faulty_routes == DEFAULT_FAULT_ROUTES


@pytest.mark.parametrize(
    "overrides",
    [
        {"runners": 0},
        {"error_rate_5xx": 1.5},
        {"job_jitter": -0.1},
        {"fault_routes": {"nope"}},
        {"cancel_running": "maybe"},
        {"result_ttl_seconds": 0},
    ],
)
def test_config_rejects_bad_values(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        EmulatorConfig(**overrides)  # type: ignore[arg-type]


def test_config_is_frozen_and_fault_routes_become_a_frozenset() -> None:
    config = EmulatorConfig(fault_routes={"submit", "status"})
    assert config.fault_routes == frozenset({"submit", "status"})
    with pytest.raises(AttributeError):
        config.runners = 5  # type: ignore[misc]
    assert config.replace(runners=5).runners == 5


def test_unit_hash_is_stable_and_spread() -> None:
    values = [unit_hash(7, "kind", n) for n in range(2000)]
    assert values == [unit_hash(7, "kind", n) for n in range(2000)]
    assert all(0.0 <= value < 1.0 for value in values)
    assert 0.45 < sum(values) / len(values) < 0.55
    assert values != [unit_hash(8, "kind", n) for n in range(2000)]


def test_fault_plan_rates_and_determinism() -> None:
    config = EmulatorConfig(error_rate_5xx=0.3, error_rate_429=0.3, seed=3)
    first, second = FaultPlan(config), FaultPlan(config)
    picks = [first.http_fault("status", "job") for _ in range(300)]
    assert picks == [second.http_fault("status", "job") for _ in range(300)]
    kinds = [pick.kind for pick in picks if pick is not None]
    assert 50 < kinds.count("http_5xx") < 130
    assert 20 < kinds.count("http_429") < 110
    assert first.http_fault("storage_upload", "x") is None  # not a default fault route


def test_fault_plan_jitter_stays_within_bounds() -> None:
    plan = FaultPlan(EmulatorConfig(job_seconds=2.0, job_jitter=0.25))
    durations = [plan.job_seconds(seq, 1) for seq in range(200)]
    assert min(durations) >= 1.5 and max(durations) <= 2.5
    assert len(set(durations)) > 100


def test_job_queue_orders_priority_requeue_and_positions() -> None:
    line: JobQueue[str] = JobQueue()
    line.push("a", seq=1)
    line.push("low", seq=2, priority="low")
    line.push("b", seq=3)
    line.push("c", seq=4)
    assert [line.position(item) for item in ("a", "b", "c", "low")] == [0, 1, 2, 3]
    assert line.pop() == "a"
    line.push("a", seq=1, front=True)  # a runner failed: back to the front
    assert list(line) == ["a", "b", "c", "low"]
    assert line.remove("b") and not line.remove("b")
    assert line.position("low") == 2 and line.position("b") is None
    assert [line.pop() for _ in range(4)] == ["a", "c", "low", None]


@pytest.mark.parametrize(
    ("prompt", "negative", "kinds"),
    [
        ("The camera orbits and dolly out", "", ("dolly_out", "orbit")),
        ("slow zoom in on the face", "", ("zoom_in",)),
        ("Pan left across the valley", "", ("pan_left",)),
        ("the camera pans right", "", ("pan_right",)),
        ("tilt up to the sky", "", ("tilt_up",)),
        ("a cat sleeping", "", ("drift",)),
        ("zoom in and pan left", "pan left", ("zoom_in",)),
    ],
)
def test_motion_words(prompt: str, negative: str, kinds: tuple[str, ...]) -> None:
    assert motion_kinds(prompt, negative) == kinds


def test_motion_paths_start_still_and_stay_in_the_margin() -> None:
    for prompt in ("zoom in", "dolly out", "pan left", "orbit", "dolly out pan right", "x"):
        for seed in range(5):
            motion = choose_motion(prompt, "", seed)
            assert motion.view(0.0) == (1.0, 0.0, 0.0)
            for step in range(11):
                zoom, x, y = motion.view(step / 10)
                half = 0.5 / zoom
                assert abs(x) + half <= 0.5 + MAX_REACH + 1e-9
                assert abs(y) + half <= 0.5 + MAX_REACH + 1e-9
    assert choose_motion("zoom in", "", 1).zoom_end > 1.2
    assert choose_motion("dolly out", "", 1).zoom_end < 0.85
    assert choose_motion("pan left", "", 1).dx < 0 < choose_motion("pan right", "", 1).dx


def test_parse_range() -> None:
    assert parse_range("bytes=0-9", 100) == (0, 10)
    assert parse_range("bytes=90-200", 100) == (90, 100)
    assert parse_range("bytes=-10", 100) == (90, 100)
    assert parse_range("bytes=100-", 100) is None
    assert parse_range("bytes=-0", 100) is None
    with pytest.raises(ValueError):
        parse_range("bytes=0-1,5-6", 100)


def test_retry_after_formatting() -> None:
    assert format_seconds(1.0) == "1"
    assert format_seconds(0.25) == "0.25"


def test_stored_file_streams_its_padding_as_zeros() -> None:
    file = StoredFile(b"abcdef", content_type="video/mp4", zeros=70_000)
    assert file.size == 70_006
    body = b"".join(file.iter_bytes(0, file.size, chunk_size=4096))
    assert body[:6] == b"abcdef" and body[6:] == bytes(70_000)
    assert b"".join(file.iter_bytes(4, 9)) == b"ef\x00\x00\x00"
    assert (
        file.etag == StoredFile(b"abcdef", "x", zeros=70_000).etag != StoredFile(b"abc", "x").etag
    )


def test_free_box_padding() -> None:
    assert padding_for(100, 50) == (b"", 0)
    header, zeros = padding_for(100, 1000)
    assert header == (900).to_bytes(4, "big") + b"free" and zeros == 892
    assert padding_for(100, 103) == ((8).to_bytes(4, "big") + b"free", 0)  # minimum box
    big = free_box_header(1 << 33)
    assert big[:8] == (1).to_bytes(4, "big") + b"free" and len(big) == 16


def test_padded_render_is_still_a_valid_mp4() -> None:
    spec = RenderSpec(width=160, height=90, fps=2, duration=5)
    video = render_video(sample_image(), spec, choose_motion("zoom in", "", 0))
    header, zeros = padding_for(len(video), len(video) + 5000)
    padded = video + header + bytes(zeros)
    assert len(padded) == len(video) + 5000
    with av.open(io.BytesIO(padded)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == spec.frames


def test_submit_options_parsing() -> None:
    options = parse_submit_options(
        {
            "X-Fal-Request-Timeout": "2.5",
            "x-fal-queue-priority": "low",
            "X-Fal-Object-Lifecycle-Preference": '{"expiration_duration_seconds": 60}',
            "X-Fal-No-Retry": "1",
            "X-Fal-Store-IO": "0",
            "Authorization": "Key secret",
        },
        {"fal_webhook": "http://127.0.0.1:9/hook", "fal_max_queue_length": "3"},
    )
    assert options.start_timeout == 2.5 and options.priority == "low"
    assert options.object_expiry_seconds == 60 and options.no_retry and not options.store_io
    assert options.webhook_url == "http://127.0.0.1:9/hook" and options.max_queue_length == 3
    assert "Authorization" not in options.headers and len(options.headers) == 5
    with pytest.raises(OptionError) as caught:
        parse_submit_options({"X-Fal-Queue-Priority": "urgent"}, {})
    assert caught.value.loc == ["header", "X-Fal-Queue-Priority"]


def test_image_inputs() -> None:
    assert decode_data_uri("data:,a%20b", max_bytes=10) == b"a b"
    with pytest.raises(ImageInputError) as too_big:
        decode_data_uri("data:image/png;base64," + "A" * 400, max_bytes=10)
    assert too_big.value.error_type == "image_too_large"
    with pytest.raises(ImageInputError) as not_image:
        decode_image(b"this is text")
    assert not_image.value.error_type == "image_load_error"
