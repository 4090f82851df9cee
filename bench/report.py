"""The markdown report of a results file: one table per scenario, then the targets.

Example:
    >>> print(table(["a", "b"], [[1, None]]))
    | a | b |
    |---|---|
    | 1 | - |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e6 else f"{value:.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items()) or "-"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _throughput(data: dict[str, Any]) -> list[str]:
    rows = [
        [
            name,
            v["makespan_s"],
            v["makespan_ratio"],
            v["queue_requests_per_job"],
            v["detection_p50_ms"],
            v["detection_p95_ms"],
            v["cpu_per_row_ms"],
            v.get("cpu_vs_fal"),
            v["peak_rss_mb"],
            v["rows_lost"],
            v.get("other_cpu_s"),
        ]
        for name, v in data["variants"].items()
    ]
    header = [
        "variant",
        "makespan s",
        "/ ideal",
        "queue req/job",
        "detect p50 ms",
        "detect p95 ms",
        "CPU ms/row",
        "CPU vs fal",
        "peak RSS MB",
        "lost",
        "other load CPU s",
    ]
    return [
        f"## Throughput: {data['rows']} rows, {data['runners']} runners, "
        f"{data['job_seconds']:g} s jobs, {data['concurrency']} in flight, {data['transport']}",
        "",
        f"Ideal makespan: {data['ideal_s']:g} s.",
        "",
        table(header, rows),
    ]


def _memory(data: dict[str, Any]) -> list[str]:
    rows = [
        [
            name,
            v["tiny_peak_rss_mb"],
            v["large_peak_rss_mb"],
            v["delta_mb"],
            v["rows_lost"],
            v.get("other_cpu_s"),
        ]
        for name, v in data["variants"].items()
    ]
    return [
        f"## Memory: {data['rows']} rows, {data['concurrency']} at a time, "
        f"{data['video_mb']:g} MiB videos vs tiny ones",
        "",
        table(
            [
                "variant",
                "tiny peak RSS MB",
                "large peak RSS MB",
                "difference MB",
                "lost",
                "other load CPU s",
            ],
            rows,
        ),
    ]


def _transfer(data: dict[str, Any]) -> list[str]:
    rows = [
        [name, v["ours_mb_s"], v["httpx_mb_s"], v["ratio"]]
        for name, v in data["destinations"].items()
    ]
    return [
        f"## Transfer: {data['files']} files of {data['file_mb']:g} MiB, "
        f"{data['repeats']} rounds per method",
        "",
        f"Other load during the run: {data.get('other_cpu_s')} CPU s.",
        "",
        table(["destination", "ours MiB/s", "httpx MiB/s", "ours / httpx"], rows),
    ]


def _scale(data: dict[str, Any]) -> list[str]:
    rows = [
        [
            r["rows"],
            r["wall_s"],
            r["rows_per_s"],
            r["rows_lost"],
            r["cpu_per_row_ms"],
            r["peak_rss_mb"]["flow"],
            r["peak_rss_mb"]["prefect_server"],
            r["peak_rss_mb"]["emulator"],
            sum(c["error_lines"] for c in r["log_errors"].values()),
            sum(c["database_locked"] for c in r["log_errors"].values()),
            r.get("other_cpu_s"),
        ]
        for r in data["runs"]
    ]
    header = [
        "rows",
        "wall s",
        "rows/s",
        "lost",
        "flow CPU ms/row",
        "flow RSS MB",
        "Prefect server RSS MB",
        "emulator RSS MB",
        "error lines",
        "db locked",
        "other load CPU s",
    ]
    return [
        f"## Scale: the flow, {data['runners']} runners, {data['job_seconds']:g} s jobs, "
        f"max_concurrency {data['concurrency']}",
        "",
        table(header, rows),
    ]


_SECTIONS = {"throughput": _throughput, "memory": _memory, "transfer": _transfer, "scale": _scale}


def render(results: dict[str, Any]) -> str:
    """The whole report as markdown."""
    meta = results["meta"]
    machine = meta["machine"]
    lines = [
        "# pika-tasks benchmark" + (" (quick)" if meta["options"]["quick"] else ""),
        "",
        f"{meta['started']}, {meta['duration_s']:g} s; {machine['nproc']} CPUs ({machine['cpu']}), "
        f"{machine['memory_gb']:g} GiB, Python {machine['python']}, "
        f"prefect {machine['packages'].get('prefect')}, "
        f"fal-client {machine['packages'].get('fal-client')}; "
        f"commit {str(meta.get('source', {}).get('at_start', {}).get('commit'))[:10]}.",
        "",
    ]
    for name, section in _SECTIONS.items():
        if name in results:
            lines += [*section(results[name]), ""]
    targets = results.get("targets", [])
    lines += [
        "## Targets",
        "",
        table(
            ["scenario", "subject", "metric", "target", "value", "met"],
            [
                [t["scenario"], t["subject"], t["metric"], t["target"], t["value"], t["met"]]
                for t in targets
            ],
        ),
        "",
    ]
    return "\n".join(lines)
