"""The benchmark's sizes, in one dataclass, with the full and the quick preset.

Example:
    >>> BenchOptions.smoke().throughput_rows
    10
    >>> BenchOptions.full().throughput_rows, BenchOptions.full().runners
    (500, 25)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ALL_SCENARIOS = (
    "throughput",
    "memory",
    "transfer",
    "scale",
    "workload",
    "first_submit",
    "cli_scale",
    "large_videos",
)
"""Scenario names, in the order they run (the last four drive ``pika-tasks run``)."""

THROUGHPUT_VARIANTS = ("flow", "pipeline", "client", "fal", "flow-floor")
"""The ways of doing the same work (our batch flow, its row pipeline without Prefect, our
client alone, fal-client), and ``flow-floor``: Prefect's own cost in the flow's shape."""

EXPERIMENTS = ("flow-tagged",)
"""Extra throughput variants that measure a choice of ours (see ``bench.variants``)."""


@dataclass(frozen=True)
class BenchOptions:
    """Sizes and switches of one benchmark run.

    Attributes:
        scenarios: which scenarios to run (see :data:`ALL_SCENARIOS`).
        throughput_rows: rows of the throughput scenario.
        runners: emulator runners (jobs in progress at once) in the throughput scenario.
        job_seconds: how long each throughput job runs.
        concurrency: rows in flight at once, the same for every variant.
        throughput_variants: which variants the throughput scenario runs (the full
            preset adds the :data:`EXPERIMENTS`).
        memory_rows: rows of the memory scenario.
        memory_concurrency: rows in flight in the memory scenario.
        memory_video_bytes: size of the large videos of the memory scenario.
        memory_variants: variants the memory scenario measures.
        transfer_files: files fetched per method and destination.
        transfer_video_bytes: size of each transferred file.
        transfer_repeats: rounds of every (destination, method) pair.
        scale_rows: row counts of the scale scenario (one flow run each).
        scale_runners: emulator runners of the scale scenario.
        scale_job_seconds: job length of the scale scenario.
        scale_concurrency: ``max_concurrency`` of the flow in the scale scenario.
        photos: distinct photo-sized images made for the realistic workload (see
            :mod:`bench.photos`); manifests cycle through them.
        workload_rows: rows of each realistic-workload run (runners, job length and
            concurrency are the throughput scenario's).
        workload_variants: ``local`` (manifest and photos in a folder), ``s3``
            (both on moto's S3), ``frame`` (the small PNG of the other scenarios, locally).
        first_submit_rows: manifest sizes of the time-to-first-submit runs (photos).
        first_submit_timeout: seconds a time-to-first-submit run may wait for its first submit.
        cli_scale_rows: row counts of the whole ``pika-tasks run`` runs that measure
            peak RSS and Prefect writes per row.
        large_videos_rows: rows of the throughput run with large videos.
        large_videos_bytes: size of each video of that run.
        large_videos_variants: ``flow`` (``pika-tasks run``) and ``client`` (ours alone).
        readback_settle: seconds the Prefect counts must stay unchanged before they are read
            (more than the server's event flush interval).
        event_flush_seconds: the Prefect server's event persister flush interval (None:
            Prefect's default, 5 s); the quick preset shortens it to wait less.
        fps: frame rate of rendered videos (low: the emulator renders once per video).
        fresh_prefect_server: a new Prefect server for each scale run (else one for all).
        quick: the smoke-test preset (recorded in the results).
        results_dir: where ``latest.json`` and ``latest.md`` go.
        work_dir: scratch folder (a temporary one when None).
    """

    scenarios: tuple[str, ...] = ALL_SCENARIOS
    throughput_rows: int = 500
    runners: int = 25
    job_seconds: float = 2.0
    concurrency: int = 50
    throughput_variants: tuple[str, ...] = THROUGHPUT_VARIANTS + EXPERIMENTS
    memory_rows: int = 20
    memory_concurrency: int = 10
    memory_video_bytes: int = 50_000_000
    memory_variants: tuple[str, ...] = ("flow", "client")
    transfer_files: int = 6
    transfer_video_bytes: int = 50_000_000
    transfer_repeats: int = 2
    scale_rows: tuple[int, ...] = (1000, 5000)
    scale_runners: int = 50
    scale_job_seconds: float = 1.0
    scale_concurrency: int = 50
    photos: int = 50
    workload_rows: int = 500
    workload_variants: tuple[str, ...] = ("local", "s3", "frame")
    first_submit_rows: tuple[int, ...] = (20, 2000, 20000)
    first_submit_timeout: float = 900.0
    cli_scale_rows: tuple[int, ...] = (1000, 5000)
    large_videos_rows: int = 500
    large_videos_bytes: int = 20_000_000
    large_videos_variants: tuple[str, ...] = ("flow", "client")
    readback_settle: float = 7.0
    event_flush_seconds: float | None = None
    fps: int = 4
    fresh_prefect_server: bool = True
    quick: bool = False
    results_dir: Path = field(default_factory=lambda: Path(__file__).parent / "results")
    work_dir: Path | None = None

    @classmethod
    def full(cls, **overrides: Any) -> BenchOptions:
        """The sizes of issues 7 and 12 that finish on two cores (20,000-row runs are opt-in)."""
        return dataclasses.replace(cls(), **overrides)

    @classmethod
    def smoke(cls, **overrides: Any) -> BenchOptions:
        """A smoke run in well under a minute: tiny sizes, one Prefect server."""
        base = cls(
            throughput_rows=10,
            throughput_variants=THROUGHPUT_VARIANTS,
            runners=5,
            job_seconds=0.2,
            concurrency=10,
            memory_rows=4,
            memory_concurrency=2,
            memory_video_bytes=2_000_000,
            memory_variants=("client",),
            transfer_files=2,
            transfer_video_bytes=1_000_000,
            transfer_repeats=1,
            scale_rows=(3, 6),
            scale_runners=5,
            scale_job_seconds=0.2,
            scale_concurrency=5,
            photos=2,
            workload_rows=3,
            workload_variants=("s3",),
            first_submit_rows=(2, 6),
            first_submit_timeout=60.0,
            cli_scale_rows=(2, 4),
            large_videos_rows=4,
            large_videos_bytes=1_000_000,
            readback_settle=1.5,
            event_flush_seconds=0.5,
            fps=2,
            fresh_prefect_server=False,
            quick=True,
        )
        return dataclasses.replace(base, **overrides)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (paths as text)."""
        data = dataclasses.asdict(self)
        data["results_dir"] = str(self.results_dir)
        data["work_dir"] = str(self.work_dir) if self.work_dir else None
        return data
