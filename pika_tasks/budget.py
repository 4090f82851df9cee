"""A spending cap for one run: money is reserved before a submit and released if fal refused it.

A batch checks its cap twice.  Before anything starts, the list price of the
rows it plans to submit must fit (:meth:`Budget.allows`).  Then every single
submit holds its price first (:meth:`Budget.hold`): the reservation is taken
under a lock, so rows submitted concurrently can never commit more than the
cap between them, and it is given back when fal answered that it did not
queue the job.  A submit whose answer was lost keeps its reservation: fal may
have queued (and billed) it.

Amounts are kept as exact decimals (``Decimal``), so three $0.20 videos fit
a $0.60 cap.

Example:
    >>> from pika_tasks.budget import Budget, BudgetExceededError
    >>> budget = Budget(limit_usd=0.50)
    >>> with budget.hold(0.20, "a"):
    ...     pass  # submit row a here
    >>> with budget.hold(0.20, "b"):
    ...     pass
    >>> budget.spent_usd
    0.4
    >>> with budget.hold(0.20, "c"):  # doctest: +ELLIPSIS
    ...     pass
    Traceback (most recent call last):
    ...
    pika_tasks.errors.BudgetExceededError: c: not submitted: ... to $0.60, over the cap of $0.50
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from decimal import ROUND_DOWN, Decimal

from pika_tasks.errors import BudgetExceededError, BudgetRefusedError

__all__ = [
    "Budget",
    "BudgetExceededError",
    "BudgetRefusedError",
    "share_cap",
    "total_usd",
    "usd",
]


def usd(amount: float | Decimal) -> str:
    """``amount`` as dollars and cents, for messages.

    Example:
        >>> usd(0.2), usd(12.345)
        ('$0.20', '$12.35')
    """
    return f"${float(amount):,.2f}"


def _exact(amount: float | Decimal) -> Decimal:
    # str() first: Decimal(0.2) would carry the binary float's error.
    return amount if isinstance(amount, Decimal) else Decimal(str(amount))


def total_usd(amounts: Iterable[float]) -> float:
    """The exact sum of prices (a float sum of three $0.20 is a hair over $0.60).

    Example:
        >>> sum([0.2, 0.2, 0.2]), total_usd([0.2, 0.2, 0.2])
        (0.6000000000000001, 0.6)
    """
    return float(sum((_exact(amount) for amount in amounts), Decimal(0)))


# Shares of a cap are cut to a millionth of a dollar, always down.
_SHARE_STEP = Decimal("0.000001")


def share_cap(limit_usd: float, prices_usd: Sequence[float]) -> list[float]:
    """Split one cap among parts that each spend on their own (the shards of a run).

    Each part gets its own price plus a share of what the cap leaves over, in
    proportion to its price (evenly when nothing is priced), cut down to a
    millionth of a dollar: together the parts can never spend past the cap,
    and each can pay for all of its own rows.

    Raises:
        ValueError: the prices alone add up to more than the cap.

    Example:
        >>> share_cap(1.0, [0.2, 0.6, 0.0])
        [0.25, 0.75, 0.0]
        >>> share_cap(1.0, [0.0, 0.0, 0.0])
        [0.333333, 0.333333, 0.333333]
    """
    limit = _exact(limit_usd)
    prices = [_exact(price) for price in prices_usd]
    priced = sum(prices, Decimal(0))
    if priced > limit:
        raise ValueError(f"the parts cost {usd(priced)}, more than the cap of {usd(limit)}")
    spare = limit - priced
    shares = []
    for price in prices:
        extra = spare * price / priced if priced else spare / len(prices)
        shares.append(float((price + extra).quantize(_SHARE_STEP, rounding=ROUND_DOWN)))
    return shares


class Budget:
    """What one run may commit to fal, at list prices.

    Args:
        limit_usd: the cap, or None for no cap (the spend is still counted).

    Thread-safe: reservations are made under a lock.

    Example:
        >>> budget = Budget(limit_usd=1.0)
        >>> budget.allows(0.9), budget.allows(1.2)
        (True, False)
        >>> Budget().allows(1_000_000.0)
        True
    """

    def __init__(self, limit_usd: float | None = None) -> None:
        if limit_usd is not None and limit_usd < 0:
            raise ValueError(f"a spending cap cannot be negative: {limit_usd}")
        self._limit = None if limit_usd is None else _exact(limit_usd)
        self._spent = Decimal(0)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        limit = "none" if self._limit is None else usd(self._limit)
        return f"Budget(spent={usd(self._spent)}, limit={limit})"

    @property
    def limit_usd(self) -> float | None:
        """The cap, or None."""
        return None if self._limit is None else float(self._limit)

    @property
    def spent_usd(self) -> float:
        """What is reserved now: submitted rows, and rows being submitted."""
        return float(self._spent)

    def allows(self, amount_usd: float) -> bool:
        """True when ``amount_usd`` more would stay within the cap."""
        if self._limit is None:
            return True
        return self._spent + _exact(amount_usd) <= self._limit

    def reserve(self, amount_usd: float, label: str = "job") -> None:
        """Reserve ``amount_usd``, or raise :class:`BudgetExceededError` reserving nothing.

        Example:
            >>> budget = Budget(limit_usd=0.3)
            >>> budget.reserve(0.2, "a")
            >>> budget.reserve(0.2, "b")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            pika_tasks.errors.BudgetExceededError: b: not submitted: ... over the cap of $0.30
        """
        amount = _exact(amount_usd)
        with self._lock:
            if self._limit is not None and self._spent + amount > self._limit:
                raise BudgetExceededError(
                    label, float(amount), float(self._spent), float(self._limit)
                )
            self._spent += amount

    def release(self, amount_usd: float) -> None:
        """Give back a reservation whose job was never queued."""
        with self._lock:
            self._spent -= _exact(amount_usd)

    @contextlib.contextmanager
    def hold(
        self,
        amount_usd: float,
        label: str = "job",
        *,
        keep_on: tuple[type[BaseException], ...] = (),
    ) -> Iterator[None]:
        """Reserve ``amount_usd`` around a submit; release it if the block raises.

        Args:
            amount_usd: the job's price.
            label: names the job in the refusal message.
            keep_on: exceptions after which the money stays reserved, because
                the job may have been queued anyway (a lost submit answer).

        Raises:
            BudgetExceededError: before the block runs, when the price does not fit.

        Example:
            >>> budget = Budget(limit_usd=0.2)
            >>> try:
            ...     with budget.hold(0.2, "a"):
            ...         raise ConnectionRefusedError  # nothing reached fal
            ... except ConnectionRefusedError:
            ...     pass
            >>> budget.spent_usd
            0.0
        """
        self.reserve(amount_usd, label)
        try:
            yield
        except keep_on:
            raise
        except BaseException:
            self.release(amount_usd)
            raise
