"""Row ids: which ids are safe as file names, and the stable ids of rows without one.

A row's id names its outputs (``{output}/{id}.mp4`` and ``{output}/{id}.json``),
so an id must never be able to point outside the output folder.  An id is
accepted when it

* has 1 to :data:`MAX_ID_LENGTH` (128) characters,
* uses only ``A-Z a-z 0-9 . _ -`` (no ``/``, ``\\``, ``:``, spaces, control
  or non-ASCII characters: so no paths, no URL schemes, no ``..`` tricks),
* does not start with ``.`` (no ``.``, ``..`` or hidden files),
* does not end with ``.`` (Windows drops trailing dots and spaces from file
  names, so ``clip.`` and ``clip`` would be the same file there), and
* is not a name Windows reserves for a device: ``CON``, ``PRN``, ``AUX``,
  ``NUL``, ``COM0`` to ``COM9`` or ``LPT0`` to ``LPT9``, in any case, alone or
  before a dot (``nul.mp4`` and ``Com1.final`` are reserved too).  Writing
  ``{output}/NUL.mp4`` on Windows writes to the null device, and the video is lost.

Two ids that differ only in case are treated as the same id by the manifest
reader, because they would overwrite each other on a case-insensitive file
system (macOS, Windows).

A row without an id gets :func:`auto_id`: a slug of the image's file name and a
short hash of what the row asks for, e.g. ``beach-sunset-3f9a1c0b7e``.  The same
row gets the same id on every run, and changing the prompt (or any other
setting of the video) gives a new id, so the new video does not overwrite the
old one.

Example:
    >>> from pika_tasks.manifest._ids import auto_id, check_id, is_safe_id
    >>> check_id("clip-001")
    'clip-001'
    >>> is_safe_id("../etc/passwd"), is_safe_id("s3://bucket/x"), is_safe_id(".hidden")
    (False, False, False)
    >>> is_safe_id("CON"), is_safe_id("lpt1.final"), is_safe_id("clip."), is_safe_id("console")
    (False, False, False, True)
    >>> auto_id("imgs/Beach Sunset.png", "waves roll in", "", "720p", 5, None)
    'Beach-Sunset-ad66b792c7'
"""

from __future__ import annotations

import hashlib
import json
import re

MAX_ID_LENGTH = 128
"""Longest accepted id, in characters."""

ID_ALPHABET = "A-Z a-z 0-9 . _ -"
"""The characters an id may use, as shown in error messages."""

WINDOWS_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{digit}" for digit in range(10)}
    | {f"LPT{digit}" for digit in range(10)}
)
"""Device names Windows reserves, whatever the case and extension (``nul.mp4`` too).

COM0 and LPT0 are in Microsoft's current list of reserved names beside COM1-9 and LPT1-9.
"""

_ID_RE = re.compile(r"[A-Za-z0-9._-]+")
_TRAILING_RULE = "ids may not end with a dot or a space (Windows drops them from file names)"
_SLUG_DROP_RE = re.compile(r"[^A-Za-z0-9_-]+")
_SLUG_MAX = 48
_HASH_CHARS = 10


def id_problem(value: str) -> str | None:
    """Say why ``value`` is not a safe id, or return None when it is.

    Example:
        >>> id_problem("a/b")
        "'a/b' contains '/'; ids may only use A-Z a-z 0-9 . _ - (they name files)"
        >>> id_problem("ok_1") is None
        True
    """
    if not value:
        return "is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value)} characters long; ids may have at most {MAX_ID_LENGTH}"
    if value.endswith(" "):
        # Before the alphabet check, so that the message says why a space there matters.
        return f"{_quote(value)} ends with a space; {_TRAILING_RULE}"
    if not _ID_RE.fullmatch(value):
        bad = next(ch for ch in value if not _ID_RE.fullmatch(ch))
        return (
            f"{_quote(value)} contains {_quote(bad)}; ids may only use {ID_ALPHABET} "
            "(they name files)"
        )
    if value.startswith("."):
        return f"{_quote(value)} starts with '.'; ids may not start with a dot"
    if value.endswith("."):
        return f"{_quote(value)} ends with '.'; {_TRAILING_RULE}"
    device = value.split(".", 1)[0]
    if device.upper() in WINDOWS_RESERVED_NAMES:
        where = "is" if device == value else f"starts with {_quote(device)},"
        return (
            f"{_quote(value)} {where} a device name Windows reserves; ids may not be "
            "CON, PRN, AUX, NUL, COM0-COM9 or LPT0-LPT9, in any case, with or without "
            "an extension"
        )
    return None


def is_safe_id(value: str) -> bool:
    """True when ``value`` is accepted as a row id (see the module docstring)."""
    return id_problem(value) is None


def check_id(value: str) -> str:
    """Return ``value`` when it is a safe id; raise ``ValueError`` saying why otherwise.

    Example:
        >>> check_id("..")
        Traceback (most recent call last):
        ...
        ValueError: id '..' starts with '.'; ids may not start with a dot
    """
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(f"id {problem}")
    return value


def auto_id(
    image: str,
    prompt: str,
    negative_prompt: str,
    resolution: str,
    duration: int,
    seed: int | None,
) -> str:
    """The stable id of a row that has none.

    It is ``{slug}-{hash}``: the slug is the image's file name without its
    extension (characters outside ``A-Z a-z 0-9 _ -`` become ``-``, at most 48
    characters, ``row`` when nothing is left); the hash is the first 10 hex
    digits of the SHA-256 of the image *as written in the manifest* and the
    final prompt, negative prompt, resolution, duration and seed.  Moving a
    manifest together with its relatively-addressed images keeps the ids.

    Such an id is always safe: the slug has no dots, so the whole id is its
    name; it holds a ``-``, so it is never a Windows device name (``CON`` or
    ``nul.png`` give ``CON-<hash>`` and ``nul-<hash>``); and it ends with a hex digit.

    Example:
        >>> auto_id("a.png", "p", "", "720p", 5, None) == auto_id("a.png", "p", "", "720p", 5, None)
        True
        >>> auto_id("a.png", "p", "", "720p", 5, None) == auto_id("a.png", "q", "", "720p", 5, None)
        False
    """
    name = image.split("?", 1)[0].split("#", 1)[0].rstrip("/\\")
    name = re.split(r"[/\\]", name)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    slug = _SLUG_DROP_RE.sub("-", stem).strip("-_")[:_SLUG_MAX].strip("-_") or "row"
    content = json.dumps(
        [image, prompt, negative_prompt, resolution, duration, seed],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    return f"{slug}-{digest}"


def _quote(value: str, limit: int = 60) -> str:
    """``value`` in quotes, control characters escaped, long values shortened."""
    shown = value if len(value) <= limit else value[: limit - 1] + "…"
    return repr(shown)
