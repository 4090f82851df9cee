"""Artifact and asset keys: valid by Prefect's own validators, stable for one location,
different for different ones, and never holding credentials or query strings."""

from __future__ import annotations

import doctest
import os

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from prefect.types.names import ArtifactKey, ValidAssetKey
from pydantic import TypeAdapter

import pika_tasks.keys
import pika_tasks.lineage
from pika_tasks.keys import artifact_key, asset_key, public_url

ARTIFACT_KEY = TypeAdapter(ArtifactKey)
ASSET_KEY = TypeAdapter(ValidAssetKey)

OUTPUTS = [
    "out",
    "/srv/videos/spring 2026/",
    "file:///srv/videos/spring",
    "s3://studio/renders/2026/spring",
    "s3://AKIA:secret@studio/renders?X-Amz-Signature=abc#frag",
    "simplecache::s3://studio/renders/",
    "gcs://bucket/Ünïcode/フォルダ",
    "memory://x",
    "https://user:pw@example.com:8443/a/b?token=t",
    "s3://bucket/" + "deep/" * 60,
]


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("kind", ["summary", "rows", "progress"])
def test_artifact_keys_follow_prefects_rules(kind: str, output: str) -> None:
    key = artifact_key(kind, output)
    assert ARTIFACT_KEY.validate_python(key) == key
    assert key.startswith(f"pika-{kind}-") and len(key) <= 64
    assert artifact_key(kind, output) == key  # stable
    for secret in ("secret", "AKIA", "Signature", "token", "pw", "frag"):
        assert secret.lower() not in key


def test_artifact_keys_tell_outputs_apart() -> None:
    places = [output for output in OUTPUTS if not output.startswith("simplecache::")]
    assert len({artifact_key("summary", output) for output in places}) == len(places)
    # The cache in front of a store is not a place of its own.
    assert artifact_key("rows", "simplecache::s3://studio/renders/") == artifact_key(
        "rows", "s3://AKIA:secret@studio/renders?X-Amz-Signature=abc#frag"
    )
    # Same place, written differently: one key.
    assert artifact_key("rows", "out") == artifact_key("rows", os.path.abspath("out") + "/")
    assert artifact_key("rows", "s3://b/out/") == artifact_key("rows", "s3://b/out?v=1")
    assert artifact_key("rows", "s3://b/out") == artifact_key("rows", "s3://k:s@b/out")
    # Slugs that collide are told apart by the hash.
    assert artifact_key("rows", "s3://a-b/c") != artifact_key("rows", "s3://a/b-c")
    assert artifact_key("rows", "s3://b/out") != artifact_key("summary", "s3://b/out")


@given(st.text(min_size=1, max_size=300))
def test_any_location_gives_a_valid_artifact_key(location: str) -> None:
    key = artifact_key("summary", location)
    assert ARTIFACT_KEY.validate_python(key) == key


@pytest.mark.parametrize(
    "location",
    [
        "/in/my photo #1 (50%).png",
        "https://me:pw@cdn.example/a b.png?token=t",
        "S3://Bucket/a.mp4",
        'file:///in/"quoted"/<a>|{b}^`c`\\d.png',
        "s3://b/" + "x" * 700,
    ],
)
def test_asset_keys_follow_prefects_rules(location: str) -> None:
    key = asset_key(location)
    assert ASSET_KEY.validate_python(key) == key
    assert "pw" not in key and "token" not in key


@given(st.text(min_size=1, max_size=600).filter(lambda text: not text.startswith("data:")))
@example("~\x00")  # a "user name" no home lookup can take: expanding it raises ValueError
@example("~nobody-here/a.png")  # a user that does not exist: left as it is
def test_any_location_gives_a_valid_asset_key(location: str) -> None:
    key = asset_key(location)
    assert ASSET_KEY.validate_python(key) == key


def test_public_url_keeps_only_what_names_the_data() -> None:
    assert public_url("s3://k:s@bucket/out/a.mp4?versionId=3") == "s3://bucket/out/a.mp4"
    assert public_url("relative/a.mp4") == f"file://{os.path.abspath('relative/a.mp4')}"
    assert asset_key("/out/a.mp4") == "file:///out/a.mp4"


@pytest.mark.parametrize("module", [pika_tasks.keys, pika_tasks.lineage])
def test_examples_run(module: object) -> None:
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert tried > 0 and failures == 0
