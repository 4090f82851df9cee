"""The retry policy: one layer of retries (the client's), its numbers stated in
pika_tasks.retry_policy, and the engine and the tasks doing what it states.
No emulator and no Prefect harness: the arithmetic, the engine on a local
callable, and the tasks' own options."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stamina.instrumentation import RetryDetails, get_on_retry_hooks, set_on_retry_hooks

from pika_tasks._retry import RetryingCaller
from pika_tasks.errors import (
    RateLimitError,
    ServerError,
    SubmitOutcomeUnknownError,
    TransportError,
)
from pika_tasks.retry_policy import MAX_RETRY_AFTER, TASK_RETRIES, RetryPolicy
from pika_tasks.settings import PikaSettings


def test_the_defaults_state_attempts_and_waits() -> None:
    policy = RetryPolicy()
    assert (policy.retries, policy.initial_delay, policy.max_delay) == (5, 0.5, 5.0)
    assert policy.attempts == 6
    assert [policy.longest_backoff(n) for n in range(1, 6)] == [1.0, 1.5, 2.5, 4.5, 5.0]
    assert policy.longest_wait_without_retry_after() == 14.5
    assert policy.longest_wait() == 5 * MAX_RETRY_AFTER == 300.0
    assert policy.task_retries == TASK_RETRIES == 0
    assert policy.total_attempts() == 6


def test_the_defaults_are_the_settings_defaults() -> None:
    assert RetryPolicy.from_settings(PikaSettings(_env_file=None)) == RetryPolicy()


def test_opted_in_task_retries_multiply_the_attempts() -> None:
    policy = RetryPolicy(retries=2)
    assert policy.total_attempts(task_retries=3) == 3 * 4
    assert RetryPolicy(retries=0).total_attempts() == 1


def test_backoffs_are_capped_and_numbered_from_one() -> None:
    policy = RetryPolicy(retries=10, initial_delay=1.0, max_delay=6.0)
    assert policy.longest_backoff(1) == 2.0  # 1 s, plus up to 1 s of jitter
    assert policy.longest_backoff(3) == 5.0
    assert policy.longest_backoff(10) == 6.0
    with pytest.raises(ValueError, match="from 1"):
        policy.longest_backoff(0)


def test_retry_settings_are_apart_from_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIKA_POLL_INTERVAL", "0.01")
    monkeypatch.setenv("PIKA_MAX_POLL_INTERVAL", "0.02")
    monkeypatch.setenv("PIKA_RETRY_INITIAL_DELAY", "2")
    monkeypatch.setenv("PIKA_RETRY_MAX_DELAY", "30")
    monkeypatch.setenv("PIKA_MAX_RETRIES", "3")
    policy = RetryPolicy.from_settings(PikaSettings(_env_file=None))
    assert (policy.retries, policy.initial_delay, policy.max_delay) == (3, 2.0, 30.0)


@pytest.fixture
def waits() -> Iterator[list[RetryDetails]]:
    """Every retry stamina decides, with the wait it chose."""
    seen: list[RetryDetails] = []
    before = get_on_retry_hooks()
    set_on_retry_hooks([seen.append])
    yield seen
    set_on_retry_hooks(before)


async def test_the_engine_makes_the_stated_attempts_within_the_stated_waits(
    waits: list[RetryDetails],
) -> None:
    policy = RetryPolicy(retries=4, initial_delay=0.01, max_delay=0.03)
    calls = 0

    async def always_busy() -> None:
        nonlocal calls
        calls += 1
        raise ServerError("busy", status_code=503)

    with pytest.raises(ServerError):
        await RetryingCaller(policy)(always_busy)

    assert calls == policy.attempts == 5
    assert [detail.retry_num for detail in waits] == [1, 2, 3, 4]
    # stamina's float sums may land a rounding error past a bound (0.030000000000000006).
    rounding = 1e-9
    for detail in waits:
        floor = min(policy.max_delay, policy.initial_delay * 2 ** (detail.retry_num - 1))
        assert (
            floor - rounding
            <= detail.wait_for
            <= policy.longest_backoff(detail.retry_num) + rounding
        )
    total = sum(detail.wait_for for detail in waits)
    assert total <= policy.longest_wait_without_retry_after() + rounding


async def test_retry_after_is_the_wait_up_to_the_stated_limit(
    waits: list[RetryDetails],
) -> None:
    policy = RetryPolicy(retries=3, initial_delay=0.01, max_delay=0.02, max_retry_after=0.2)
    answers: list[BaseException | None] = [
        RateLimitError("full", status_code=429, retry_after=0.05),
        RateLimitError("full", status_code=429, retry_after=0.5),  # over the limit
    ]

    async def call() -> None:
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    with pytest.raises(RateLimitError) as info:
        await RetryingCaller(policy)(call)

    assert info.value.retry_after == 0.5  # given up at once: the caller may reschedule
    assert [round(detail.wait_for, 3) for detail in waits] == [0.05]


async def test_a_submit_whose_answer_was_lost_is_never_retried(
    waits: list[RetryDetails],
) -> None:
    calls = 0

    async def lost() -> None:
        nonlocal calls
        calls += 1
        raise SubmitOutcomeUnknownError("the answer was lost")

    with pytest.raises(SubmitOutcomeUnknownError):
        await RetryingCaller(RetryPolicy(initial_delay=0.01))(lost)

    assert calls == 1
    assert waits == []


async def test_a_transient_failure_then_success_returns_the_value() -> None:
    answers: list[BaseException | str] = [TransportError("reset"), "done"]

    async def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    assert await RetryingCaller(RetryPolicy(initial_delay=0.001))(call) == "done"


def test_the_tasks_do_not_retry_on_top_of_the_client() -> None:
    from pika_tasks.tasks import (
        fetch_video,
        retry_on_transient,
        submit_image_to_video,
        wait_for_completion,
    )

    for task in (submit_image_to_video, wait_for_completion, fetch_video):
        assert task.retries == TASK_RETRIES == 0, task.name
        # A user who opts in to task retries still retries only transient errors.
        assert task.retry_condition_fn is retry_on_transient, task.name
