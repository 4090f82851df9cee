"""What a run does with a row, from its record alone: every state, a changed row, a lost video,
and the operator's choice about submits whose answer was never recorded."""

from __future__ import annotations

import pytest
from support import handle_at

from pika_tasks.models import RequestHandle
from pika_tasks.pipeline import Action, decide
from pika_tasks.records import RowRecord

HANDLE = handle_at("http://queue.test")


def record(state: str, *, request: RequestHandle | None = HANDLE, print_: str = "f") -> RowRecord:
    return RowRecord(id="a", state=state, fingerprint=print_, request=request)  # type: ignore[arg-type]


def test_a_row_without_a_record_is_submitted() -> None:
    assert decide(None, "f", video_exists=False) is Action.SUBMIT
    assert decide(None, "f", video_exists=True) is Action.SUBMIT


@pytest.mark.parametrize("state", ["submitting", "submitted", "succeeded", "failed", "cancelled"])
def test_a_changed_row_is_submitted_whatever_its_record_says(state: str) -> None:
    assert decide(record(state), "other inputs", video_exists=True) is Action.SUBMIT


@pytest.mark.parametrize(
    ("state", "video_exists", "expected"),
    [
        ("succeeded", True, Action.SKIP),  # done: nothing to pay
        ("succeeded", False, Action.REATTACH),  # the video was lost: fetch it again
        ("submitted", False, Action.REATTACH),  # at fal: wait for it and fetch
        ("submitted", True, Action.REATTACH),  # a file is there, but the row never finished
        ("failed", False, Action.SUBMIT),
        ("cancelled", False, Action.REATTACH),  # fal may have finished it anyway: look first
        ("submitting", False, Action.UNKNOWN),  # may be at fal: never paid twice by default
    ],
)
def test_the_decision_for_each_recorded_state(
    state: str, video_exists: bool, expected: Action
) -> None:
    assert decide(record(state), "f", video_exists=video_exists) is expected


@pytest.mark.parametrize("state", ["submitted", "succeeded", "cancelled"])
def test_a_record_without_its_request_cannot_be_reattached(state: str) -> None:
    assert decide(record(state, request=None), "f", video_exists=False) is Action.SUBMIT


def test_unknown_submits_are_submitted_again_only_when_asked() -> None:
    unknown = record("submitting", request=None)
    assert decide(unknown, "f", video_exists=False) is Action.UNKNOWN
    assert decide(unknown, "f", video_exists=False, resubmit_unknown=True) is Action.SUBMIT
    # The choice concerns unrecorded submits only: a finished row is still skipped.
    done = record("succeeded")
    assert decide(done, "f", video_exists=True, resubmit_unknown=True) is Action.SKIP
