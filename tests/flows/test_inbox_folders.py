"""Where the inbox puts each manifest's videos: never in another manifest's folder, whose
rows of the same id it would overwrite (a paid video lost)."""

from __future__ import annotations

import uuid

import fsspec

from pika_tasks.flows.inbox import (
    PROCESSED_FOLDER,
    known_manifests,
    manifest_stem,
    output_folder,
    pending_manifests,
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
