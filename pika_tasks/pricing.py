"""What a video costs at fal's list prices, and how to change them.

fal publishes Pika 2.2's 5-second prices ($0.20 at 720p, $0.45 at 1080p);
10-second prices are not published and are assumed to be double.  Every
price can be overridden, e.g. when fal changes them or your account has a
discount, through :class:`~pika_tasks.settings.PikaSettings`:
``PIKA_PRICE_USD_720P_5S``, ``PIKA_PRICE_USD_720P_10S``,
``PIKA_PRICE_USD_1080P_5S`` and ``PIKA_PRICE_USD_1080P_10S`` (environment or
``.env``), or the same fields as keyword arguments.

Prices drive the estimate, the budget cap (``max_spend_usd``) and the spend
in run reports; they are list prices, not an invoice.

Example:
    >>> from pika_tasks.pricing import PriceTable
    >>> from pika_tasks.settings import PikaSettings
    >>> PriceTable().cost("1080p", 5)
    0.45
    >>> PriceTable(usd_720p_10s=0.5).cost("720p", 10)
    0.5
    >>> PriceTable.from_settings(PikaSettings(price_usd_720p_5s=0.25)).cost("720p", 5)
    0.25
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from pika_tasks.models import DURATIONS, RESOLUTIONS, Duration, Resolution

if TYPE_CHECKING:
    from pika_tasks.settings import PikaSettings

__all__ = [
    "PriceTable",
]


class PriceTable(BaseModel):
    """USD per video by resolution and duration.

    Attributes:
        usd_720p_5s: a 5-second 720p video (fal's list price: $0.20).
        usd_1080p_5s: a 5-second 1080p video (fal's list price: $0.45).
        usd_720p_10s: a 10-second 720p video (unpublished; assumed $0.40).
        usd_1080p_10s: a 10-second 1080p video (unpublished; assumed $0.90).
    """

    usd_720p_5s: float = Field(default=0.20, ge=0)
    usd_1080p_5s: float = Field(default=0.45, ge=0)
    usd_720p_10s: float = Field(default=0.40, ge=0)
    usd_1080p_10s: float = Field(default=0.90, ge=0)

    @classmethod
    def from_settings(cls, settings: PikaSettings) -> PriceTable:
        """The list prices, with the overrides set in ``settings`` (``PIKA_PRICE_USD_*``).

        Example:
            >>> from pika_tasks.settings import PikaSettings
            >>> PriceTable.from_settings(PikaSettings(price_usd_1080p_10s=1.0)).usd_1080p_10s
            1.0
        """
        overrides = {
            f"usd_{resolution}_{duration}s": value
            for resolution in RESOLUTIONS
            for duration in DURATIONS
            if (value := getattr(settings, f"price_usd_{resolution}_{duration}s")) is not None
        }
        return cls(**overrides)

    def cost(self, resolution: Resolution, duration: Duration) -> float:
        """The price of one video.

        Example:
            >>> PriceTable().cost("720p", 10)
            0.4
        """
        price: float = getattr(self, f"usd_{resolution}_{duration}s")
        return price
