"""What a video costs at fal's list prices.

Example:
    >>> from pika_tasks.pricing import PriceTable
    >>> PriceTable().cost("1080p", 5)
    0.45
    >>> PriceTable(usd_720p_10s=0.5).cost("720p", 10)
    0.5
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from pika_tasks.models import Duration, Resolution


class PriceTable(BaseModel):
    """USD per video by resolution and duration.

    fal publishes the 5-second prices; 10-second prices are not published and
    are assumed to be double until you set them.
    """

    usd_720p_5s: float = Field(default=0.20, ge=0)
    usd_1080p_5s: float = Field(default=0.45, ge=0)
    usd_720p_10s: float = Field(default=0.40, ge=0)
    usd_1080p_10s: float = Field(default=0.90, ge=0)

    def cost(self, resolution: Resolution, duration: Duration) -> float:
        """The price of one video."""
        price: float = getattr(self, f"usd_{resolution}_{duration}s")
        return price
