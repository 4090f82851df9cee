"""A fresh checkout of the project for end-to-end tests: the files a clone has, elsewhere."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from prefect_stack import ROOT

_NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis", "out", "artifacts"
)


def copy_checkout(destination: Path) -> Path:
    """Copy the project's files to ``destination``, as ``git clone`` would lay them out.

    The working tree's files that git tracks or would track (so edits not yet
    committed are tested too); nothing git ignores: no virtualenv, caches or
    outputs. Without git, the tree less those.
    """
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(ROOT, destination, ignore=_NOT_IN_A_CLONE)
        return destination.resolve()
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet staged is still listed
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination.resolve()
