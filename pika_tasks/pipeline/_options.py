"""What a batch run is asked to do, as typed flow parameters.

Prefect renders each of these pydantic models as a form in a deployment's run
dialog; the CLI and the scale-out flow build them once and pass them on.

Example:
    >>> from pika_tasks.pipeline import BatchLimits, Location
    >>> Location.of("s3://bucket/out").storage_options
    {}
    >>> BatchLimits(max_concurrency=50).planning_lookahead
    8
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_LIMIT_NAME", "BatchLimits", "Location"]

DEFAULT_LOOKAHEAD = 8
"""Rows planned ahead of those at fal when ``lookahead`` is not given (and fewer rows are
in flight at most)."""

DEFAULT_LIMIT_NAME = "fal-pika"
"""The Prefect global concurrency limit that bounds requests at fal, by default."""


class Location(BaseModel):
    """A file or folder at any fsspec URL, with the options to open it.

    Attributes:
        url: a local path or an fsspec URL (``s3://bucket/out``, ``memory://x``...).
        storage_options: fsspec options for its file system (credentials, endpoint...).

    Example:
        >>> Location(url="s3://b/out", storage_options={"anon": True}).url
        's3://b/out'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(min_length=1)
    storage_options: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, value: str | Location | dict[str, Any], **default_options: Any) -> Location:
        """A location from a URL (with ``default_options``), a dict or a location.

        >>> Location.of("out", anon=True).storage_options
        {'anon': True}
        >>> Location.of({"url": "out"}).url
        'out'
        """
        if isinstance(value, Location):
            return value
        if isinstance(value, dict):
            return cls.model_validate(value)
        return cls(url=value, storage_options=dict(default_options))


class BatchLimits(BaseModel):
    """How much a run may do at once, and spend.

    Attributes:
        max_concurrency: rows at fal at once in this run (submitted and not yet
            completed); as many more may be downloading their videos.
        max_spend_usd: a cap on this run's spend at list prices (see
            :mod:`pika_tasks.pricing`): when the rows certain to be submitted
            cost more, the run starts nothing; while it runs, a row whose price
            would pass the cap is not submitted.
        concurrency_limit: the Prefect global concurrency limit that bounds
            requests at fal across every run and worker (``prefect gcl create
            fal-pika --limit N``); when it does not exist, ``max_concurrency``
            alone bounds them.
        submit_rate_limit: a global limit with slot decay that paces submits, or None.
        wait_timeout: seconds to wait for one job before cancelling it.
        lookahead: rows read and checked ahead of those at fal, so the next
            submit never waits for an image read (default: ``max_concurrency``,
            at most 8: checking an image decodes it, which is CPU work that
            more planners in parallel only slow down).
        claim_lease_seconds: how long a row's claim lasts unless its run renews
            it (every third of it): after a run dies, another takes its rows
            over once this has passed (at once when the dead run's process was
            on the same host, or Prefect reports the run over).
        claim_wait_seconds: the longest wait for a row another live run holds;
            past it the row is reported as held by that run, not submitted
            (default: ``wait_timeout``, else the ``PIKA_WAIT_TIMEOUT`` setting).

    Example:
        >>> BatchLimits(max_spend_usd=25).concurrency_limit
        'fal-pika'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_concurrency: int = Field(default=4, ge=1)
    max_spend_usd: float | None = Field(default=None, ge=0)
    concurrency_limit: str | None = DEFAULT_LIMIT_NAME
    submit_rate_limit: str | None = None
    wait_timeout: float | None = Field(default=None, ge=0)
    lookahead: int | None = Field(default=None, ge=1)
    claim_lease_seconds: float = Field(default=60.0, ge=1)
    claim_wait_seconds: float | None = Field(default=None, ge=0)

    @property
    def planning_lookahead(self) -> int:
        """Rows planned ahead of the ones at fal."""
        return self.lookahead or min(self.max_concurrency, DEFAULT_LOOKAHEAD)
