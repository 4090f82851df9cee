"""The README's promises: its flow example runs, and its commands are the real ones."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from support import png_bytes, point_at, probe_video

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def readme_function(name: str) -> Any:
    """The function ``name`` defined by a python block of the README, as written."""
    example = next(block for block in python_blocks() if f"def {name}(" in block)
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(example, str(README), "exec"), namespace)
    return namespace[name]


@pytest.fixture
def emu(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An emulator that the settings read from the environment point at."""
    server = make_emulator(job_seconds=0.2, fps=4)
    point_at(server, monkeypatch)
    return server


@pytest.mark.usefixtures("prefect_harness")
async def test_readme_flow_example_writes_a_video(emu: Any, tmp_path: Path) -> None:
    image = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    path = await readme_function("one_video")(image, "slow zoom in", str(tmp_path))

    info = probe_video(Path(path).read_bytes())
    assert (info["codec"], info["width"], info["height"]) == ("h264", 1280, 720)
    assert info["frames"] == 5 * 4  # 5 seconds at the emulator's 4 fps
    assert emu.stats()["submissions"] == 1


@pytest.mark.usefixtures("prefect_harness")
async def test_readme_batch_example_runs_the_bundled_manifest(emu: Any, tmp_path: Path) -> None:
    manifest = README.parent / "examples" / "manifest.csv"
    made = await readme_function("make_videos")(str(manifest), str(tmp_path / "videos"))

    assert made == 3 and emu.stats()["submissions"] == 3
    for name in ("sunset", "lighthouse", "forest"):
        assert probe_video((tmp_path / "videos" / f"{name}.mp4").read_bytes())["codec"] == "h264"


def test_readme_commands_exist() -> None:
    text = README.read_text()
    root = README.parent
    for script in re.findall(r"bash (scripts/[\w.]+\.sh)", text):
        assert (root / script).is_file(), script
    ci = (root / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci
    assert "pika-tasks run examples/manifest.csv --out" in (root / "scripts/example.sh").read_text()
