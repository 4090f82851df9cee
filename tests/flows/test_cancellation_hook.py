"""The cancellation hook runs where Prefect runs it (often the worker): it must use
the run's own queue settings, which deployments give the run as job variables."""

from __future__ import annotations

import uuid

import pytest
from prefect.client.schemas.objects import FlowRun

from pika_tasks.flows._cancellation import settings_for_run


def a_run(job_variables: dict[str, object]) -> FlowRun:
    return FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), name="r", job_variables=job_variables)


def test_the_runs_job_variables_override_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_KEY", "worker-key")
    monkeypatch.setenv("PIKA_QUEUE_URL", "https://queue.fal.run")
    monkeypatch.setenv("PIKA_READ_TIMEOUT", "12")
    run = a_run(
        {"env": {"PIKA_QUEUE_URL": "http://127.0.0.1:8000", "PIKA_MAX_RETRIES": "1", "X": None}}
    )
    settings = settings_for_run(run)
    assert settings.queue_url == "http://127.0.0.1:8000"
    assert settings.max_retries == 1
    assert settings.read_timeout == 12  # not in the run's env: this process's value
    assert settings.fal_key is not None and settings.fal_key.get_secret_value() == "worker-key"


def test_a_run_without_job_variables_uses_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_KEY", "worker-key")
    monkeypatch.setenv("PIKA_QUEUE_URL", "http://queue.example")
    assert settings_for_run(a_run({})).queue_url == "http://queue.example"
