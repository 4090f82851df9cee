"""Checking raw records: one valid :class:`ManifestRow` or one :class:`RowError` per row."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os
import posixpath
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from pika_tasks._locations import expand_home
from pika_tasks.manifest._formats import Record, bad_byte, has_surrogates, kind
from pika_tasks.manifest._ids import auto_id, id_problem
from pika_tasks.manifest._models import (
    MAX_PROMPT_CHARS,
    MAX_SEED,
    ManifestRow,
    RowDefaults,
    RowError,
)
from pika_tasks.models import DURATIONS, RESOLUTIONS, Duration, Resolution

KNOWN_COLUMNS = ("id", "image", "prompt", "negative_prompt", "resolution", "duration", "seed")
"""Columns with a meaning; every other column goes to :attr:`ManifestRow.metadata`."""

_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_INT_RE = re.compile(r"[+-]?\d+(?:\.0*)?")
_HTTP = ("http", "https")


class _FieldProblem(Exception):
    """A row's field is wrong; carries the field and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class _CheckedRow:
    row_number: int
    row: ManifestRow | None
    error: RowError | None
    id: str | None
    auto: bool


# --------------------------------------------------------------------------- locations


def base_url_of(url: str) -> str:
    """The folder of ``url``, in the same spelling (protocol kept; local paths made absolute).

    For a chained URL (``simplecache::s3://b/m.csv``) it is the folder in the
    last (outermost) file system of the chain.
    """
    if "::" in url:
        url = url.rsplit("::", 1)[-1]
    match = _SCHEME_RE.match(url)
    if match is None:
        return os.path.dirname(os.path.abspath(expand_home(url)))
    scheme = url.split("://", 1)[0]
    if scheme.lower() in _HTTP:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}{posixpath.dirname(parts.path)}".rstrip("/")
    rest = url[match.end() :]
    parent = rest.rsplit("/", 1)[0] if "/" in rest else ""
    return f"{scheme}://{parent}"


def resolve_relative_image(raw: str, base_url: str) -> str:
    """Where the image ``raw`` (as written in a manifest) lives.

    URLs with a scheme (``https://``, ``s3://``, ``memory://``...) and chained
    fsspec URLs are kept; absolute local paths are kept (normalised); relative
    paths are joined to ``base_url`` in its file system.

    Raises:
        _FieldProblem: for data: URIs, NUL characters, and relative paths that climb
            above the store's root.
    """
    if raw.lower().startswith("data:"):
        raise _FieldProblem(
            "image", "data: URIs are not accepted: give a URL or a path to the file"
        )
    if "\x00" in raw:
        raise _FieldProblem("image", "holds a NUL character, which no path or URL can hold")
    if _SCHEME_RE.match(raw) or "::" in raw:
        return raw
    if raw.startswith("~"):
        raw = expand_home(raw)
    if os.path.isabs(raw):
        return os.path.normpath(raw)
    match = _SCHEME_RE.match(base_url)
    if match is None:
        return os.path.normpath(os.path.join(base_url, raw))
    scheme, rest = base_url[: match.end()], base_url[match.end() :]
    joined = posixpath.normpath(posixpath.join(rest, raw.replace("\\", "/")))
    climbs = joined == ".." or joined.startswith("../")
    if scheme.lower().rstrip(":/") in _HTTP:
        host = rest.split("/", 1)[0]
        climbs = climbs or not (joined == host or joined.startswith(host + "/"))
    if climbs:
        raise _FieldProblem("image", f"{_show(raw)} climbs above the root of {base_url}")
    return scheme + joined.removeprefix("./") if joined != "." else scheme


# --------------------------------------------------------------------------- values


def _show(value: Any, limit: int = 60) -> str:
    """A value as it appears in a reason: strings quoted, long values shortened."""
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 1] + "…"
        return repr(text)
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except ValueError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _text(values: dict[str, Any], field: str) -> str | None:
    value = values.get(field)
    if _missing(value):
        return None
    if not isinstance(value, str):
        raise _FieldProblem(field, f"must be a string, not {kind(value)}")
    return value.strip()


def _whole(value: Any) -> int | None:
    """``value`` as an int when it is one (``5``, ``5.0``, ``"5"``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        return int(value.strip().split(".", 1)[0])
    return None


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data.

    Non-finite floats become None, dates ISO 8601 text, decimals text, bytes
    their UTF-8 text (base64 when not UTF-8), other objects ``str(value)``.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item) for item in value]
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def _first_bad_text(value: Any) -> str | None:
    """The first string inside ``value`` that holds undecodable bytes."""
    if isinstance(value, str):
        return value if has_surrogates(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _first_bad_text(key) or _first_bad_text(item)
            if found is not None:
                return found
    if isinstance(value, list):
        for item in value:
            found = _first_bad_text(item)
            if found is not None:
                return found
    return None


def compose_prompt(prompt: str, suffix: str) -> str:
    """``prompt`` with ``suffix`` appended after ``", "`` (directly when it starts with ``,.;:``).

    Example:
        >>> compose_prompt("waves roll in", "cinematic lighting")
        'waves roll in, cinematic lighting'
        >>> compose_prompt("waves roll in", ". Shot on film.")
        'waves roll in. Shot on film.'
    """
    suffix = suffix.strip()
    if not suffix:
        return prompt
    if suffix[0] in ",.;:":
        return prompt.rstrip() + suffix
    return f"{prompt.rstrip().rstrip(',').rstrip()}, {suffix}"


# --------------------------------------------------------------------------- rows


def _row_id(values: dict[str, Any]) -> str | None:
    value = values.get("id")
    if _missing(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _FieldProblem("id", f"must be a string, not {kind(value)}")
    problem = id_problem(value.strip())
    if problem is not None:
        raise _FieldProblem("id", problem)
    return value.strip()


def _resolution(values: dict[str, Any], default: Resolution | None) -> Resolution:
    value = _text(values, "resolution")
    if value is None:
        return default or "720p"
    for allowed in RESOLUTIONS:
        if value.lower() == allowed:
            return allowed
    raise _FieldProblem("resolution", f"{_show(value)} is not one of {', '.join(RESOLUTIONS)}")


def _duration(values: dict[str, Any], default: Duration | None) -> Duration:
    value = values.get("duration")
    if _missing(value):
        return default or 5
    number = _whole(value)
    for allowed in DURATIONS:
        if number == allowed:
            return allowed
    raise _FieldProblem(
        "duration", f"{_show(value)} is not one of {', '.join(str(d) for d in DURATIONS)}"
    )


def _seed(values: dict[str, Any], default: int | None) -> int | None:
    value = values.get("seed")
    if _missing(value):
        return default
    number = _whole(value)
    if number is None:
        raise _FieldProblem("seed", f"{_show(value)} is not a whole number")
    if not 0 <= number <= MAX_SEED:
        raise _FieldProblem("seed", f"{number} is out of range: seeds are 0..{MAX_SEED}")
    return number


def _limit(field: str, text: str, note: str = "") -> str:
    if len(text) > MAX_PROMPT_CHARS:
        raise _FieldProblem(
            field,
            f"is {len(text)} characters long{note}; the limit is {MAX_PROMPT_CHARS}",
        )
    return text


def _check(record: Record, defaults: RowDefaults, base_url: str) -> _CheckedRow:
    """Check one record; never raises."""
    row_id: str | None = None
    if record.values is None:
        field, reason = record.problem or ("row", "cannot be read")
        return _CheckedRow(
            record.row_number,
            None,
            RowError(row_number=record.row_number, field=field, reason=reason),
            None,
            False,
        )
    values = {
        key: (None if record.text and isinstance(item, str) and not item.strip() else item)
        for key, item in record.values.items()
    }
    try:
        for key, item in values.items():
            bad = _first_bad_text(key) or _first_bad_text(item)
            if bad is not None:
                raise _FieldProblem(
                    key, f"is not valid UTF-8 ({bad_byte(bad)}): save the manifest as UTF-8"
                )
            # Past the first block a NUL byte fails its row (see _source.open_text); in
            # JSON it can only be an escape, which the field's own checks judge.
            if record.text and isinstance(item, str) and "\x00" in item:
                raise _FieldProblem(
                    key, "holds a NUL byte: is part of the manifest binary? save it as text"
                )
        row_id = _row_id(values)
        raw_image = _text(values, "image")
        if raw_image is None:
            raise _FieldProblem("image", "is missing")
        image = resolve_relative_image(raw_image, base_url)
        prompt = _text(values, "prompt")
        if prompt is None:
            prompt = defaults.prompt.strip() if defaults.prompt else None
        if not prompt:
            raise _FieldProblem("prompt", "is missing, and no default prompt was given")
        prompt = compose_prompt(prompt, defaults.prompt_suffix)
        note = " with the suffix" if defaults.prompt_suffix.strip() else ""
        prompt = _limit("prompt", prompt, note)
        negative = _text(values, "negative_prompt")
        if negative is None:
            negative = (defaults.negative_prompt or "").strip()
        negative = _limit("negative_prompt", negative)
        resolution = _resolution(values, defaults.resolution)
        duration = _duration(values, defaults.duration)
        seed = _seed(values, defaults.seed)
    except _FieldProblem as bad:
        error = RowError(
            row_number=record.row_number, field=bad.field, reason=bad.reason, id=row_id
        )
        return _CheckedRow(record.row_number, None, error, row_id, False)

    auto = row_id is None
    if row_id is None:
        row_id = auto_id(raw_image, prompt, negative, resolution, duration, seed)
    metadata = {key: json_safe(item) for key, item in values.items() if key not in KNOWN_COLUMNS}
    row = ManifestRow(
        row_number=record.row_number,
        id=row_id,
        image=image,
        prompt=prompt,
        negative_prompt=negative,
        resolution=resolution,
        duration=duration,
        seed=seed,
        metadata=metadata,
    )
    return _CheckedRow(record.row_number, row, None, row_id, auto)


def check_rows(
    records: Iterable[Record], defaults: RowDefaults, base_url: str
) -> Iterator[ManifestRow | RowError]:
    """Check each record as it comes and refuse duplicate ids; rows and errors in file order.

    An id is taken by the first row that names it, even when that row is
    refused for another reason, so fixing that row later cannot create a
    duplicate.  Ids are compared ignoring case.  Only the ids seen so far are
    kept, never the rows.

    Example:
        >>> from pika_tasks.manifest._formats import Record
        >>> records = [Record(1, {"id": "a", "image": "/a.png", "prompt": "p"}),
        ...            Record(2, {"id": "A", "image": "/b.png", "prompt": "p"})]
        >>> for item in check_rows(records, RowDefaults(), "/in"):
        ...     print(item.reason if isinstance(item, RowError) else item.id)
        a
        duplicate id 'A' (the same as 'a' when case is ignored), first used on row 1
    """
    # Per id: the row that took it, and its spelling when that is not the folded key.
    first_use: dict[str, int | tuple[int, str]] = {}
    for record in records:
        checked = _check(record, defaults, base_url)
        error = checked.error
        if checked.id is not None:
            key = checked.id.casefold()
            first = first_use.get(key)
            if first is None:
                row = checked.row_number
                first_use[key] = row if checked.id == key else (row, checked.id)
            elif error is None:
                first_row, first_id = first if isinstance(first, tuple) else (first, key)
                error = _duplicate(checked, first_row, first_id)
        if error is not None:
            yield error
        elif checked.row is not None:
            yield checked.row


def _duplicate(checked: _CheckedRow, first_row: int, first_id: str) -> RowError:
    assert checked.id is not None
    reason = f"duplicate id {checked.id!r}"
    if first_id != checked.id:
        reason += f" (the same as {first_id!r} when case is ignored)"
    reason += f", first used on row {first_row}"
    if checked.auto:
        reason += (
            "; this row asks for the same video as that one: give the rows distinct ids "
            "to make both"
        )
    return RowError(row_number=checked.row_number, field="id", reason=reason, id=None)
