"""ImageLimits(local_root=...): local images are read only from inside one folder.

Every image here is a real PNG, so each refusal is the confinement's doing: without
``local_root`` the same image is read.  Paths are checked as fsspec opens them
(``..`` and symbolic links resolved), given as paths, ``file://`` or ``local://``
URLs, or as the local end of a chained URL.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pytest
from pydantic import ValidationError

from pika_tasks.images import ImageError, ImageLimits, _fetch, inspect_image

LOOPBACK_OK = ImageLimits(allow_private_addresses=True)


@dataclass
class Folders:
    """``root`` (the folder images are confined to) and places around it."""

    base: Path
    root: Path

    def __str__(self) -> str:
        return str(self.root)


@pytest.fixture
def folders(tmp_path: Path, png: bytes) -> Folders:
    """``inbox/`` (the root) and ``outside/`` and ``inbox-2/`` (a sibling sharing its
    prefix), each with a PNG, an archive holding one, and links that cross between them."""
    root = tmp_path / "inbox"
    for folder in (root, tmp_path / "outside", tmp_path / "inbox-2"):
        (folder / "sub").mkdir(parents=True)
        (folder / "a.png").write_bytes(png)
        with zipfile.ZipFile(folder / "images.zip", "w") as archive:
            archive.writestr("a.png", png)
        with tarfile.open(folder / "images.tar", "w") as archive:
            archive.add(folder / "a.png", "a.png")
    (root / "leak.png").symlink_to(tmp_path / "outside" / "a.png")
    (root / "linked-dir").symlink_to(tmp_path / "outside")
    (root / "own.png").symlink_to(root / "a.png")
    (tmp_path / "outside" / "into-root.png").symlink_to(root / "a.png")
    (tmp_path / "inbox-link").symlink_to(root)
    return Folders(tmp_path, root)


INSIDE = {
    "path": "{root}/a.png",
    "dot-dot-back-in": "{root}/sub/../a.png",
    "file-url": "file://{root}/a.png",
    "local-url": "local://{root}/a.png",
    "link-inside": "{root}/own.png",
    "link-from-outside-to-inside": "{base}/outside/into-root.png",
    "through-a-link-to-the-root": "{base}/inbox-link/a.png",
    "zip-inside": "zip://a.png::{root}/images.zip",
    "tar-inside": "tar://a.png::file://{root}/images.tar",
    "cached-inside": "simplecache::file://{root}/a.png",
}

OUTSIDE = {
    "absolute": "{base}/outside/a.png",
    "dot-dot": "{root}/../outside/a.png",
    "dot-dot-in-sub": "{root}/sub/../../outside/a.png",
    "sibling-sharing-the-prefix": "{base}/inbox-2/a.png",
    "link-to-outside": "{root}/leak.png",
    "through-a-linked-folder": "{root}/linked-dir/a.png",
    "file-url": "file://{base}/outside/a.png",
    "file-url-dot-dot": "file://{root}/../outside/a.png",
    "local-url": "local://{base}/outside/a.png",
    "zip-outside": "zip://a.png::{base}/outside/images.zip",
    "zip-outside-file-url": "zip://a.png::file://{base}/outside/images.zip",
    "tar-outside": "tar://a.png::{root}/../outside/images.tar",
    "cached-outside": "simplecache::file://{base}/outside/a.png",
    "cached-archive": "simplecache::zip://a.png::{root}/linked-dir/images.zip",
    "block-cached": "blockcache::{base}/outside/a.png",
}


def _image(template: str, folders: Folders) -> str:
    return template.format(root=folders.root, base=folders.base)


@pytest.mark.parametrize("name", list(INSIDE))
async def test_images_inside_the_folder_are_read(name: str, folders: Folders, png: bytes) -> None:
    image = _image(INSIDE[name], folders)

    check = await inspect_image(image, limits=ImageLimits(local_root=str(folders.root)))

    assert (check.image, check.size_bytes) == (image, len(png))


@pytest.mark.parametrize("name", list(OUTSIDE))
async def test_images_outside_the_folder_are_refused(
    name: str, folders: Folders, png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = _image(OUTSIDE[name], folders)
    # Without the option, the same image is a good one.
    assert (await inspect_image(image)).size_bytes == len(png)
    opened: list[str] = []
    real_read = _fetch._read_store

    def read_store(image: str, options: dict[str, Any], max_bytes: int) -> bytes:
        opened.append(image)
        return real_read(image, options, max_bytes)

    monkeypatch.setattr(_fetch, "_read_store", read_store)

    with pytest.raises(ImageError) as caught:
        await inspect_image(image, limits=ImageLimits(local_root=str(folders.root)))

    assert str(caught.value) == (
        f"{image}: is outside {folders.root}, the folder local images are confined to "
        "(after resolving '..' and symbolic links)"
    )
    assert opened == [], "the image was opened"


@pytest.mark.parametrize("form", ["link", "file-url", "trailing-slash", "dot-dot", "home"])
async def test_the_folder_may_be_given_in_any_form(
    form: str, folders: Folders, png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(folders.base))
    root = {
        "link": f"{folders.base}/inbox-link",
        "file-url": f"file://{folders.root}",
        "trailing-slash": f"{folders.root}/",
        "dot-dot": f"{folders.root}/sub/..",
        "home": "~/inbox",
    }[form]
    limits = ImageLimits(local_root=root)

    assert (await inspect_image(f"{folders.root}/a.png", limits=limits)).size_bytes == len(png)
    with pytest.raises(ImageError, match="the folder local images are confined to"):
        await inspect_image(f"{folders.base}/outside/a.png", limits=limits)


async def test_relative_paths_are_resolved_from_the_working_folder(
    folders: Folders, png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(folders.root / "sub")
    limits = ImageLimits(local_root="..")

    assert (await inspect_image("../a.png", limits=limits)).size_bytes == len(png)
    with pytest.raises(ImageError, match="is outside \\.\\., the folder"):
        await inspect_image("../../outside/a.png", limits=limits)


async def test_a_missing_file_inside_is_reported_missing_and_outside_refused(
    folders: Folders,
) -> None:
    limits = ImageLimits(local_root=str(folders.root))

    with pytest.raises(ImageError, match="not found"):
        await inspect_image(f"{folders.root}/nowhere.png", limits=limits)
    with pytest.raises(ImageError, match="is outside"):
        await inspect_image(f"{folders.base}/nowhere.png", limits=limits)


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("reference://a.png", "reference:// can read local files outside "),
        ("dir://a.png", "dir:// can read local files outside "),
    ],
)
async def test_protocols_that_read_local_files_elsewhere_are_refused(
    image: str, reason: str, folders: Folders
) -> None:
    with pytest.raises(ImageError, match=reason):
        await inspect_image(image, limits=ImageLimits(local_root=str(folders.root)))


async def test_images_that_are_not_local_files_are_not_confined(
    folders: Folders,
    png: bytes,
    s3_bucket: tuple[str, dict[str, Any]],
    http_server: Any,
) -> None:
    bucket, options = s3_bucket
    fsspec.filesystem("s3", **options, skip_instance_cache=True).pipe(f"{bucket}/a.png", png)
    fsspec.filesystem("memory").pipe("memory://confined/a.png", png)
    http_server.routes["/a.png"] = {"body": png}
    limits = LOOPBACK_OK.model_copy(update={"local_root": str(folders.root)})
    try:
        for image, options_ in [
            (f"{bucket}/a.png", options),
            ("memory://confined/a.png", {}),
            (f"{http_server.url}/a.png", {}),
        ]:
            check = await inspect_image(image, storage_options=options_, limits=limits)
            assert check.size_bytes == len(png), image
    finally:
        fsspec.filesystem("memory").rm("memory://confined/a.png")


def test_the_folder_check_follows_what_fsspec_opens(folders: Folders) -> None:
    """The paths checked are fsspec's own split of the chain, local links only."""
    chain = _fetch._links(f"zip://a.png::file://{folders.root}/../outside/images.zip", {})

    assert [protocol for _, protocol in chain] == ["zip", "file"]
    assert os.path.realpath(chain[1][0]) == str(folders.base / "outside" / "images.zip")


async def test_a_path_that_cannot_be_resolved_is_refused(folders: Folders) -> None:
    with pytest.raises(ImageError, match="is not a usable local path: embedded null byte"):
        await inspect_image(f"{folders.root}/a\0.png", limits=ImageLimits(local_root=str(folders)))


def test_an_empty_folder_is_not_a_folder() -> None:
    with pytest.raises(ValidationError):
        ImageLimits(local_root="")
