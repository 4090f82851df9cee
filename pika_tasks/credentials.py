"""The Prefect block that stores a fal API key.

Example:
    Save the key once (or in the UI), then load it in any flow::

        from pika_tasks import FalCredentials

        FalCredentials(key="fal-key-...").save("fal", overwrite=True)
        credentials = FalCredentials.load("fal")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from pika_tasks.settings import DEFAULT_QUEUE_URL, DEFAULT_STORAGE_URL, PikaSettings

if TYPE_CHECKING:
    from pika_tasks.client import PikaClient

__all__ = [
    "LOGO_URL",
    "FalCredentials",
]

# The logo ships in the package (pika_tasks/assets/logo.png) and is published here.
LOGO_URL = "https://raw.githubusercontent.com/pika-tasks/pika-tasks/main/pika_tasks/assets/logo.png"


class FalCredentials(Block):
    """Credentials for fal's queue API: the key and, optionally, where to send requests.

    The key is kept as a secret: Prefect stores it encrypted and never shows it.

    Example:
        >>> from pika_tasks import FalCredentials
        >>> credentials = FalCredentials(key="not-a-real-key")
        >>> credentials.get_settings().queue_url
        'https://queue.fal.run'
    """

    _block_type_name = "fal Credentials"
    _block_type_slug = "fal-credentials"
    _logo_url = LOGO_URL  # type: ignore[assignment]
    _documentation_url = "https://pypi.org/project/pika-tasks/"  # type: ignore[assignment]
    _description = "The fal API key (and optional queue and storage URLs) used by pika-tasks."
    _code_example = """
```python
from pika_tasks import FalCredentials

fal_credentials = FalCredentials.load("BLOCK_NAME")
async with fal_credentials.get_client() as client:
    handle = await client.submit({"image_url": "https://...", "prompt": "slow zoom in"})
```"""

    key: SecretStr = Field(description="The fal API key, sent as 'Authorization: Key ...'.")
    queue_url: str = Field(
        default=DEFAULT_QUEUE_URL,
        description="Base URL of the fal queue; point it at the emulator for offline runs.",
    )
    storage_url: str = Field(
        default=DEFAULT_STORAGE_URL,
        description="Base URL of fal's file storage, used to upload large images.",
    )

    def get_settings(self, **overrides: Any) -> PikaSettings:
        """Settings carrying this block's key and URLs; other fields come from the environment."""
        values: dict[str, Any] = {
            "fal_key": self.key,
            "queue_url": self.queue_url,
            "storage_url": self.storage_url,
        }
        values.update(overrides)
        return PikaSettings(**values)

    def get_client(self, **overrides: Any) -> PikaClient:
        """A :class:`~pika_tasks.client.PikaClient` using these credentials (``overrides``
        set other settings); use it as ``async with block.get_client() as client:``."""
        from pika_tasks.client import PikaClient

        return PikaClient(self.get_settings(**overrides))
