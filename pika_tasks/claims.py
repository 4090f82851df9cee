"""Claims: one run at a time owns a row at an output location, so overlapping runs pay once.

fal has no idempotency key: two runs that submit the same row pay for two
videos.  Runs overlap in real life (a schedule that outlasts its interval, a
manual re-run beside a scheduled one, a retried scale-out shard), so before a
row is submitted (or re-attached) its run takes the row's **claim**: a small
file created with an exclusive create in the output location::

    {output}/_claims/{id}/{generation:08d}.json

* The create is atomic where the store has an exclusive create (``"xb"``):
  ``O_EXCL`` on a local disk, a conditional write (``If-None-Match: *``) on
  S3.  Of two runs creating the same generation, exactly one succeeds.
* A claim names its flow run, host and process, and carries a **lease** that
  its holder renews while the row is in flight.  A claim whose lease has
  expired, whose process is gone (same host), or whose flow run is over is
  **stale**: another run takes the row over by creating the *next*
  generation, itself an exclusive create, so two runs never take over the same row.
* The holder releases its claim (every generation up to its own) when the row ends,
  and a run that ends removes the ``_claims`` folder if it is empty.

Whoever holds the claim reads the row's record again before acting on it:
the record, not the claim, says what is done; the claim only makes sure one
run at a time decides.

Stores without an exclusive create (:data:`EXCLUSIVE_CREATE_PROTOCOLS` lists
the ones with) still get claims, written after an existence check: runs that
start together can both take a row there.

Example:
    >>> from pika_tasks.claims import ClaimBook, Holder
    >>> from pika_tasks.records import OutputLocation
    >>> book = ClaimBook(OutputLocation("memory://claims-doc/out"), lease_seconds=60)
    >>> mine = book.take("a", Holder(flow_run_id="run-1"))
    >>> mine.generation, book.take("a", Holder(flow_run_id="run-2")) is None
    (1, True)
    >>> book.release(mine)
    >>> book.take("a", Holder(flow_run_id="run-2")).generation
    1
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fsspec.utils import get_protocol
from pydantic import BaseModel, Field, ValidationError

from pika_tasks.records import OutputLocation
from pika_tasks.storage import filesystem, join

__all__ = [
    "CLAIMS_FOLDER",
    "EXCLUSIVE_CREATE_PROTOCOLS",
    "Claim",
    "ClaimBook",
    "Holder",
    "has_exclusive_create",
]

CLAIMS_FOLDER = "_claims"

EXCLUSIVE_CREATE_PROTOCOLS = frozenset({"file", "local", "memory", "s3", "s3a"})
"""Stores whose exclusive create (``"xb"``) is atomic and tested here: ``O_EXCL`` locally,
a conditional write on S3, one process's dict for ``memory://``."""


# A claim's folder can vanish between its makedirs and the create (another run
# removing it, empty, as it releases its last claim): the create is tried again.
_CREATE_ATTEMPTS = 3


def has_exclusive_create(url: str) -> bool:
    """True when claims at ``url`` are taken with an atomic exclusive create.

    >>> has_exclusive_create("s3://bucket/out"), has_exclusive_create("ftp://host/out")
    (True, False)
    >>> has_exclusive_create("/data/out"), has_exclusive_create("gs://bucket/out")
    (True, False)
    """
    return get_protocol(url) in EXCLUSIVE_CREATE_PROTOCOLS


class Holder(BaseModel):
    """Who takes a claim: a flow run, on a host, in a process.

    Example:
        >>> Holder(flow_run_id="r").pid == os.getpid()
        True
    """

    flow_run_id: str | None = None
    flow_run_name: str | None = None
    host: str = Field(default_factory=socket.gethostname)
    pid: int = Field(default_factory=os.getpid)

    def describe(self) -> str:
        """How a report names the holder."""
        name = self.flow_run_name or self.flow_run_id or "a run"
        return f"flow run {name} (pid {self.pid} on {self.host})"


class Claim(BaseModel):
    """One generation of a row's claim, as written at the output location."""

    row_id: str
    generation: int
    holder: Holder
    token: str = Field(default_factory=lambda: uuid.uuid4().hex)
    taken_at: datetime
    lease_expires_at: datetime

    def lease_expired(self, now: datetime | None = None) -> bool:
        """True when the holder has not renewed the lease in time."""
        return (now or datetime.now(UTC)) >= self.lease_expires_at

    def process_gone(self) -> bool:
        """True when the holder's process ran on this host and is no longer running."""
        if self.holder.host != socket.gethostname() or self.holder.pid == os.getpid():
            return False
        try:
            os.kill(self.holder.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # someone else's live process
        return False


class ClaimBook:
    """The claims of the rows at one output location (blocking calls: run them in a thread).

    Args:
        out: the output location.
        lease_seconds: how long a claim lasts unless its holder renews it.
    """

    def __init__(self, out: OutputLocation, lease_seconds: float = 60.0) -> None:
        self.out = out
        self.lease = timedelta(seconds=lease_seconds)
        self.folder = join(out.url, CLAIMS_FOLDER)
        self.atomic = has_exclusive_create(out.url)

    def _url(self, row_id: str, generation: int) -> str:
        return join(self.folder, row_id, f"{generation:08d}.json")

    def current(self, row_id: str) -> Claim | None:
        """The row's newest claim, or None when it has none."""
        fs, path = filesystem(join(self.folder, row_id), self.out.storage_options)
        try:
            names = fs.ls(path, detail=False, refresh=True)
        except FileNotFoundError:
            return None
        finally:
            fs.invalidate_cache(path)
        generations = sorted(
            int(stem)
            for stem in (posixpath.basename(n).removesuffix(".json") for n in names)
            if stem.isdigit()
        )
        for generation in reversed(generations):
            claim = self._read(row_id, generation)
            if claim is not None:
                return claim
        return None

    def _read(self, row_id: str, generation: int) -> Claim | None:
        fs, path = filesystem(self._url(row_id, generation), self.out.storage_options)
        try:
            with fs.open(path, "rb") as handle:
                return Claim.model_validate_json(handle.read())
        except (FileNotFoundError, ValidationError, ValueError):
            # Released meanwhile, or half-written by a store without atomic writes.
            return None

    def take(self, row_id: str, holder: Holder, *, over: Claim | None = None) -> Claim | None:
        """Create the row's claim (or the generation after ``over``, a stale claim).

        Returns:
            The claim taken, or None when another run created that generation first.
        """
        now = datetime.now(UTC)
        claim = Claim(
            row_id=row_id,
            generation=over.generation + 1 if over else 1,
            holder=holder,
            taken_at=now,
            lease_expires_at=now + self.lease,
        )
        fs, path = filesystem(self._url(row_id, claim.generation), self.out.storage_options)
        data = claim.model_dump_json().encode("utf-8")
        attempts = 0
        while True:
            attempts += 1
            with contextlib.suppress(OSError):
                fs.makedirs(posixpath.dirname(path), exist_ok=True)
            if not self.atomic and fs.exists(path):
                return None
            try:
                with fs.open(path, "xb") as handle:
                    handle.write(data)
            except FileExistsError:
                return None
            except FileNotFoundError:
                # Another run released its last claim and removed the empty folder
                # between our makedirs and our create: make the folder again.
                if attempts == _CREATE_ATTEMPTS:
                    raise
                continue
            except OSError:
                # Stores word a lost race differently (S3 servers without the condition's
                # name in a 412 give a plain OSError): the file being there is the answer.
                if fs.exists(path):
                    return None
                raise
            return claim

    def renew(self, claim: Claim) -> Claim:
        """Extend the claim's lease (only its holder writes its generation)."""
        renewed = claim.model_copy(update={"lease_expires_at": datetime.now(UTC) + self.lease})
        fs, path = filesystem(self._url(claim.row_id, claim.generation), self.out.storage_options)
        with fs.open(path, "wb") as handle:
            handle.write(renewed.model_dump_json().encode("utf-8"))
        return renewed

    def release(self, claim: Claim) -> None:
        """Give the row up: remove this generation and the stale ones before it."""
        fs, folder = filesystem(join(self.folder, claim.row_id), self.out.storage_options)
        for generation in range(claim.generation, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                fs.rm(posixpath.join(folder, f"{generation:08d}.json"))
        _remove_if_empty(fs, folder)

    def tidy(self) -> None:
        """Remove the claims folder if no row is claimed (a run's last step).

        Only an empty folder goes, so the claims of a run still going are never
        touched; a run that takes a claim just after makes the folder again.
        """
        _remove_if_empty(*filesystem(self.folder, self.out.storage_options))


def _remove_if_empty(fs: Any, folder: str) -> None:
    """``rmdir``: local disks keep empty folders (object stores have none); a folder
    that is not empty, or already gone, stays as it is."""
    with contextlib.suppress(OSError):
        fs.rmdir(folder)
