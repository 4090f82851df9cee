"""The markdown report of a results file: one table per scenario, issue 12's targets, all targets.

Example:
    >>> print(table(["a", "b"], [[1, None]]))
    | a | b |
    |---|---|
    | 1 | - |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.targets import ISSUE_12_METRICS


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
    lines = [
        f"## Throughput: {data['rows']} rows, {data['runners']} runners, "
        f"{data['job_seconds']:g} s jobs, {data['concurrency']} in flight, {data['transport']}",
        "",
        f"Ideal makespan: {data['ideal_s']:g} s.",
        "",
        table(header, rows),
    ]
    floor, share = data.get("flow_floor"), data.get("prefect_share")
    if floor and share:
        lines += [
            "",
            "Prefect's own cost, measured in the same run by `flow-floor` (a flow of "
            f"{floor['rows']} rows, each three task runs that do nothing, {data['concurrency']} "
            "at a time, on the same kind of server):",
            "",
            table(
                ["figure", "value"],
                [
                    ["Prefect's start (call to first task body), s", share["prefect_start_s"]],
                    ["flow makespan less that start / ideal", share["makespan_less_start_ratio"]],
                    ["floor CPU ms/row", share["floor_cpu_per_row_ms"]],
                    ["floor CPU / fal-client's", share["floor_cpu_vs_fal"]],
                    ["flow CPU less the floor / fal-client's", share["cpu_less_floor_vs_fal"]],
                    ["floor wall s", floor["makespan_s"]],
                    ["floor Prefect server CPU s", floor["prefect_server_cpu_s"]],
                ],
            ),
        ]
    return lines


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
        [
            name,
            v["ours_mb_s"],
            v["httpx_mb_s"],
            v["ratio"],
            v.get("httpx_sha256_mb_s"),
            v.get("ratio_vs_checked"),
        ]
        for name, v in data["destinations"].items()
    ]
    return [
        f"## Transfer: {data['files']} files of {data['file_mb']:g} MiB, "
        f"{data['repeats']} rounds per method",
        "",
        f"Other load during the run: {data.get('other_cpu_s')} CPU s.",
        "",
        table(
            [
                "destination",
                "ours MiB/s",
                "httpx MiB/s",
                "ours / httpx",
                "httpx + SHA-256 MiB/s",
                "ours / httpx + SHA-256",
            ],
            rows,
        ),
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
            sum(c.get("messages_dropped", 0) for c in r["log_errors"].values()),
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
        "server drops",
        "other load CPU s",
    ]
    return [
        f"## Scale: the flow, {data['runners']} runners, {data['job_seconds']:g} s jobs, "
        f"max_concurrency {data['concurrency']}",
        "",
        table(header, rows),
    ]


def _workload(data: dict[str, Any]) -> list[str]:
    rows = [
        [
            name,
            v["flow_s"],
            v["flow_ratio"],
            v["wall_s"],
            v["first_submit_s"],
            v["cpu_per_row_ms"],
            v["peak_rss_mb"],
            v["rows_lost"],
            (v.get("vs_frame") or {}).get("cpu_per_row_ms"),
            v.get("other_cpu_s"),
        ]
        for name, v in data["variants"].items()
    ]
    header = [
        "manifest",
        "flow run s",
        "/ ideal",
        "command wall s",
        "first submit s",
        "CPU ms/row",
        "peak RSS MB",
        "lost",
        "CPU vs frame",
        "other load CPU s",
    ]
    photos = data["photos"]
    return [
        f"## Workload: {data['rows']} rows of photos, {data['runners']} runners, "
        f"{data['job_seconds']:g} s jobs, --max-concurrency {data['concurrency']} "
        "(`pika-tasks run`)",
        "",
        f"{photos['count']} distinct photos ({photos['jpeg']} JPEG, {photos['png']} PNG, "
        f"{photos['min_mb']:g}-{photos['max_mb']:g} MB, mean {photos['mean_mb']:g} MB), "
        f"rows cycling through them; `frame` is the small PNG. Ideal: {data['ideal_s']:g} s. "
        "CPU includes the command's start-up.",
        "",
        table(header, rows),
    ]


def _first_submit(data: dict[str, Any]) -> list[str]:
    rows = [
        [
            r["rows"],
            r["first_submit_s"],
            r["vs_smallest"],
            r["cpu_at_first_submit_s"],
            r["peak_rss_mb"],
            "timed out" if r["timed_out"] else ("stopped" if r["stopped_at_first_submit"] else "-"),
            r.get("other_cpu_s"),
        ]
        for r in data["runs"]
    ]
    header = [
        "rows",
        "first submit s",
        "vs smallest",
        "CPU s by then",
        "peak RSS MB",
        "end",
        "other load CPU s",
    ]
    return [
        f"## Time to first submit: `pika-tasks run` on photos, "
        f"--max-concurrency {data['concurrency']}",
        "",
        "From the command's start to the emulator's first submit; the command is stopped there.",
        "",
        table(header, rows),
    ]


def _cli_scale(data: dict[str, Any]) -> list[str]:
    rows = [
        [
            r["rows"],
            r["wall_s"],
            r["rows_per_s"],
            r["rows_lost"],
            r["cpu_per_row_ms"],
            r["peak_rss_mb"],
            r["peak_hwm_mb"],
            r["prefect_server_peak_rss_mb"],
            r["prefect_events"],
            r["prefect_logs"],
            r["prefect_writes_per_row"],
            sum(c["error_lines"] for c in r["log_errors"].values()),
            sum(c["database_locked"] for c in r["log_errors"].values()),
            sum(c.get("messages_dropped", 0) for c in r["log_errors"].values()),
            r.get("other_cpu_s"),
        ]
        for r in data["runs"]
    ]
    header = [
        "rows",
        "wall s",
        "rows/s",
        "lost",
        "CPU ms/row",
        "peak RSS MB",
        "VmHWM MB",
        "Prefect server RSS MB",
        "events",
        "log lines",
        "writes/row",
        "error lines",
        "db locked",
        "server drops",
        "other load CPU s",
    ]
    lines = [
        f"## Scale through `pika-tasks run`: {data['runners']} runners, "
        f"{data['job_seconds']:g} s jobs, --max-concurrency {data['concurrency']}",
        "",
        table(header, rows),
    ]
    if data["runs"] and data["runs"][-1].get("prefect_events_by_name"):
        last = data["runs"][-1]
        per_row = [
            [name, count, round(count / last["rows"], 2)]
            for name, count in last["prefect_events_by_name"].items()
        ]
        per_row += [
            [f"log lines ({level})", count, round(count / last["rows"], 2)]
            for level, count in (last.get("prefect_logs_by_level") or {}).items()
        ]
        lines += [
            "",
            f"Prefect writes of the {last['rows']}-row run:",
            "",
            table(["event / log level", "count", "per row"], per_row),
        ]
    return lines


def _large_videos(data: dict[str, Any]) -> list[str]:
    rows = [
        [
            name,
            v["makespan_s"],
            v["makespan_ratio"],
            v.get("vs_client"),
            v["queue_span_s"],
            v["detection_p95_ms"],
            v["cpu_per_row_ms"],
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
        "vs client",
        "queue span s",
        "detect p95 ms",
        "CPU ms/row",
        "peak RSS MB",
        "lost",
        "other load CPU s",
    ]
    return [
        f"## Large videos: {data['rows']} rows of {data['video_mb']:g} MiB videos, "
        f"{data['runners']} runners, {data['job_seconds']:g} s jobs, "
        f"{data['concurrency']} in flight",
        "",
        f"Ideal makespan: {data['ideal_s']:g} s. The flow's makespan is its flow run's "
        "(`pika-tasks run`); the client's its batch in a worker.",
        "",
        table(header, rows),
    ]


_SECTIONS = {
    "throughput": _throughput,
    "memory": _memory,
    "transfer": _transfer,
    "scale": _scale,
    "workload": _workload,
    "first_submit": _first_submit,
    "cli_scale": _cli_scale,
    "large_videos": _large_videos,
}


def issue_12_table(targets: Sequence[dict[str, Any]]) -> str:
    """Issue 12's target table, in its order, from the run's targets (a row per subject)."""
    rows = [
        [t["metric"], t["subject"], t["target"], t["value"], t["met"]]
        for scenario, metric in ISSUE_12_METRICS
        for t in targets
        if t["scenario"] == scenario and t["metric"] == metric and t.get("issue") == 12
    ]
    return table(["metric", "subject", "target", "value", "met"], rows)


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
    lines += ["## Issue 12 targets", "", issue_12_table(targets), ""]
    lines += [
        "## Targets",
        "",
        table(
            ["scenario", "subject", "metric", "target", "value", "met", "issue"],
            [
                [
                    t["scenario"],
                    t["subject"],
                    t["metric"],
                    t["target"],
                    t["value"],
                    t["met"],
                    t.get("issue"),
                ]
                for t in targets
            ],
        ),
        "",
    ]
    return "\n".join(lines)
