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

ALL_SCENARIOS = ("throughput", "memory", "transfer", "scale")
"""Scenario names, in the order they run."""

THROUGHPUT_VARIANTS = ("flow", "client", "fal")
"""The three ways of doing the same work: our batch flow, our client alone, fal-client."""

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
    fps: int = 4
    fresh_prefect_server: bool = True
    quick: bool = False
    results_dir: Path = field(default_factory=lambda: Path(__file__).parent / "results")
    work_dir: Path | None = None

    @classmethod
    def full(cls, **overrides: Any) -> BenchOptions:
        """The sizes of issue 7: 500 rows, 25 runners, 2 s jobs, 50 MB videos, 1,000/5,000 rows."""
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
