"""Configuration, read from arguments, the environment and a ``.env`` file.

Every field can be set by keyword argument, by an environment variable
(``FAL_KEY`` for the key, ``PIKA_<FIELD>`` for the rest) or by the same names
in a ``.env`` file in the working directory, in that order of precedence.

Example:
    >>> from pika_tasks.settings import PikaSettings
    >>> settings = PikaSettings(fal_key="s3cret-k3y", queue_url="http://127.0.0.1:8000")
    >>> settings.queue_url
    'http://127.0.0.1:8000'
    >>> "s3cret-k3y" in repr(settings)
    False
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pika_tasks.errors import MissingKeyError

__all__ = [
    "DEFAULT_ENDPOINT_ID",
    "DEFAULT_QUEUE_URL",
    "DEFAULT_STORAGE_URL",
    "PikaSettings",
]

DEFAULT_QUEUE_URL = "https://queue.fal.run"
DEFAULT_ENDPOINT_ID = "fal-ai/pika/v2.2/image-to-video"
DEFAULT_STORAGE_URL = "https://rest.fal.ai"


class PikaSettings(BaseSettings):
    """Settings for talking to fal's queue (or the bundled emulator)."""

    model_config = SettingsConfigDict(
        env_prefix="PIKA_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    fal_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("FAL_KEY", "fal_key"),
        description="The fal API key, sent as 'Authorization: Key ...'.",
    )
    queue_url: str = Field(
        default=DEFAULT_QUEUE_URL,
        description="Base URL of the fal queue (PIKA_QUEUE_URL).",
    )
    endpoint_id: str = Field(
        default=DEFAULT_ENDPOINT_ID,
        description="The model endpoint, owner/app/path.",
    )
    storage_url: str = Field(
        default=DEFAULT_STORAGE_URL,
        description="Base URL of fal's file storage, used to upload large images.",
    )
    poll_interval: float = Field(
        default=0.5,
        gt=0,
        description="First delay between status polls, in seconds (polling only: retries "
        "have their own delays).",
    )
    max_poll_interval: float = Field(
        default=5.0, gt=0, description="Longest delay between status polls, in seconds."
    )
    connect_timeout: float = Field(default=10.0, gt=0, description="TCP/TLS connect timeout.")
    read_timeout: float = Field(default=60.0, gt=0, description="Timeout for one read.")
    sse_idle_timeout: float = Field(
        default=45.0,
        gt=0,
        description="Longest silence on the status stream before it is dropped (fal "
        "sends a keep-alive comment about every 15 s).",
    )
    download_timeout: float | None = Field(
        default=900.0,
        gt=0,
        description="Longest time for one video download, resumes included, in seconds "
        "(a server that trickles bytes never trips a read timeout); None for no limit.",
    )
    wait_timeout: float = Field(
        default=1800.0, gt=0, description="Longest wait for one job to complete, in seconds."
    )
    max_retries: int = Field(
        default=5,
        ge=0,
        description="Retries of a transient failure on a call that is safe to repeat "
        "(PIKA_MAX_RETRIES); see pika_tasks.retry_policy.",
    )
    retry_initial_delay: float = Field(
        default=0.5,
        gt=0,
        description="First wait before a retry, in seconds, doubling per retry, plus up "
        "to as much jitter (PIKA_RETRY_INITIAL_DELAY).  Until 0.1.0 retries waited "
        "poll_interval.",
    )
    retry_max_delay: float = Field(
        default=5.0,
        gt=0,
        description="Longest wait before a retry when fal sent no Retry-After, in seconds "
        "(PIKA_RETRY_MAX_DELAY).  Until 0.1.0 retries waited at most max_poll_interval.",
    )
    start_timeout: float | None = Field(
        default=None,
        gt=0,
        description="Deadline for fal to start processing (X-Fal-Request-Timeout).",
    )

    price_usd_720p_5s: float | None = Field(
        default=None,
        ge=0,
        description="Price of a 5 s 720p video in USD (PIKA_PRICE_USD_720P_5S); "
        "default: fal's list price, $0.20.",
    )
    price_usd_1080p_5s: float | None = Field(
        default=None,
        ge=0,
        description="Price of a 5 s 1080p video in USD (PIKA_PRICE_USD_1080P_5S); "
        "default: fal's list price, $0.45.",
    )
    price_usd_720p_10s: float | None = Field(
        default=None,
        ge=0,
        description="Price of a 10 s 720p video in USD (PIKA_PRICE_USD_720P_10S); "
        "default: $0.40 (unpublished, assumed double the 5 s price).",
    )
    price_usd_1080p_10s: float | None = Field(
        default=None,
        ge=0,
        description="Price of a 10 s 1080p video in USD (PIKA_PRICE_USD_1080P_10S); "
        "default: $0.90 (unpublished, assumed double the 5 s price).",
    )

    def require_key(self) -> SecretStr:
        """Return the key, or raise :class:`MissingKeyError` saying how to set it."""
        if self.fal_key is None or not self.fal_key.get_secret_value():
            raise MissingKeyError()
        return self.fal_key
