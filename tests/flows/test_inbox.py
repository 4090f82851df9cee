"""The inbox: each manifest's videos go to a folder of its own (never another manifest's,
whose rows of the same id they would overwrite: a paid video lost), and a manifest is
marked processed only once its batch ran its rows."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pytest
from support import write_manifest

from pika_tasks.flows.inbox import (
    PROCESSED_FOLDER,
    known_manifests,
    manifest_stem,
    output_folder,
    pending_manifests,
    process_inbox,
)


def test_a_stem_keeps_every_dot_but_the_suffixes() -> None:
    assert [manifest_stem(n) for n in ("2026.11.24.csv", "v1.2 shoot.jsonl.gz", "a.b.PARQUET")] == [
        "2026.11.24",
        "v1.2 shoot",
        "a.b",
    ]


def test_daily_manifests_with_dotted_dates_get_a_folder_each() -> None:
    known = {"2026.11.24.csv", "2026.11.25.csv"}
    folders = {output_folder(name, known) for name in known}
    assert folders == {"2026.11.24", "2026.11.25"}


def test_manifests_of_one_stem_in_two_formats_keep_their_whole_names() -> None:
    known = {"shoot.csv", "shoot.json", "other.csv"}
    assert [output_folder(n, known) for n in sorted(known)] == ["other", "shoot.csv", "shoot.json"]


def test_a_processed_manifest_removed_from_the_inbox_still_holds_its_stem() -> None:
    inbox = f"memory://inbox-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{inbox}/shoot.json", b"[]")
    fs.pipe(f"{inbox}/{PROCESSED_FOLDER}/shoot.csv.json", b"{}")  # shoot.csv: done, then deleted
    fs.pipe(f"{inbox}/notes.txt", b"not a manifest")
    known = known_manifests(inbox)
    assert known == {"shoot.json", "shoot.csv"}
    assert [u.rsplit("/", 1)[1] for u in pending_manifests(inbox)] == ["shoot.json"]
    assert output_folder("shoot.json", known) == "shoot.json"


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.timeout(120)
async def test_a_manifest_whose_batch_never_ran_is_left_for_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key on this worker: the batch run fails before any row, and the manifest gets
    no marker, so it is not silently dropped."""
    monkeypatch.delenv("FAL_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env to read a key from
    inbox = tmp_path / "inbox"
    write_manifest(inbox, ["a,images/0.png,zoom in"])
    (inbox / "manifest.csv").rename(inbox / "shoot.csv")

    processed = await process_inbox(str(inbox), str(tmp_path / "videos"))

    assert processed == []
    assert not (inbox / PROCESSED_FOLDER / "shoot.csv.json").exists()
    assert [u.rsplit("/", 1)[1] for u in pending_manifests(str(inbox))] == ["shoot.csv"]
