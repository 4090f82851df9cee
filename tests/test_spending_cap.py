"""The spending cap alone (no emulator, no Prefect): holds are atomic, refused submits give the
money back, lost answers keep it, sums are exact, and a cap shared among shards holds."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pika_tasks.budget import Budget, BudgetExceededError, share_cap, total_usd, usd
from pika_tasks.errors import ServerError, SubmitOutcomeUnknownError


async def test_concurrent_holds_never_pass_the_cap() -> None:
    budget = Budget(limit_usd=0.50)
    admitted: list[int] = []

    async def submit(n: int) -> None:
        with budget.hold(0.20, f"r{n}"):
            await asyncio.sleep(0.01)  # the submit's network round trip
            admitted.append(n)

    results = await asyncio.gather(*(submit(n) for n in range(20)), return_exceptions=True)
    assert len(admitted) == 2
    refused = [r for r in results if isinstance(r, BudgetExceededError)]
    assert len(refused) == 18
    assert budget.spent_usd == pytest.approx(0.40)


def test_holds_from_many_threads_never_pass_the_cap() -> None:
    budget = Budget(limit_usd=1.00)
    start = threading.Barrier(16)

    def reserve(n: int) -> bool:
        start.wait()
        try:
            budget.reserve(0.20, f"r{n}")
        except BudgetExceededError:
            return False
        return True

    with ThreadPoolExecutor(16) as pool:
        admitted = sum(pool.map(reserve, range(16)))
    assert admitted == 5
    assert budget.spent_usd == 1.0


def test_refused_submits_give_the_money_back_lost_answers_keep_it() -> None:
    budget = Budget(limit_usd=0.20)
    keep = (SubmitOutcomeUnknownError,)
    with pytest.raises(ServerError), budget.hold(0.20, "a", keep_on=keep):
        raise ServerError("runner_scheduling_failure", status_code=503)
    assert budget.spent_usd == 0.0
    with pytest.raises(SubmitOutcomeUnknownError), budget.hold(0.20, "b", keep_on=keep):
        raise SubmitOutcomeUnknownError("the answer was lost")
    assert budget.spent_usd == 0.20
    with pytest.raises(BudgetExceededError, match=r"c: not submitted: .* over the cap of \$0.20"):
        budget.reserve(0.01, "c")


def test_exact_sums_fit_an_exact_cap() -> None:
    assert total_usd([0.2, 0.2, 0.2]) == 0.6
    budget = Budget(limit_usd=0.6)
    for n in range(3):
        budget.reserve(0.2, f"r{n}")
    assert not budget.allows(0.01)


def test_without_a_cap_everything_fits_and_is_still_counted() -> None:
    budget = Budget()
    budget.reserve(1_000.0, "big")
    assert budget.allows(1e9)
    assert (budget.limit_usd, budget.spent_usd) == (None, 1_000.0)


def test_a_negative_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        Budget(limit_usd=-0.01)


def test_a_refusal_reserves_nothing_and_names_the_row() -> None:
    budget = Budget(limit_usd=0.45)
    budget.reserve(0.20, "a")
    with pytest.raises(BudgetExceededError) as refused:
        budget.reserve(0.45, "row-7")
    assert str(refused.value).startswith("row-7: not submitted")
    assert budget.spent_usd == 0.20
    budget.release(0.20)
    assert budget.spent_usd == 0.0 and budget.allows(0.45)


def test_amounts_read_as_dollars_and_cents() -> None:
    assert [usd(0.2), usd(0.005), usd(1234.5)] == ["$0.20", "$0.01", "$1,234.50"]


@given(
    st.decimals(min_value=0, max_value=10_000, places=2),
    st.lists(st.sampled_from([0.0, 0.2, 0.4, 0.45, 0.9]), min_size=1, max_size=40),
)
def test_a_shared_cap_never_adds_up_past_the_cap_and_pays_for_every_part(
    spare: Decimal, prices: list[float]
) -> None:
    cap = total_usd([*prices, float(spare)])
    shares = share_cap(cap, prices)
    assert len(shares) == len(prices)
    assert total_usd(shares) <= cap
    assert all(
        Budget(limit_usd=share).allows(price) for share, price in zip(shares, prices, strict=True)
    )


def test_a_cap_below_the_parts_prices_is_not_shared() -> None:
    with pytest.raises(ValueError, match=r"the parts cost \$0\.60, more than the cap of \$0\.50"):
        share_cap(0.5, [0.2, 0.4])
