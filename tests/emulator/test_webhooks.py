"""Webhooks as fal delivers them: signed, retried on failure, naming the last attempt."""

from __future__ import annotations

import itertools
import json
import queue
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from emulator_support import LoopbackHttp, submit
from support import wait_until

from pika_tasks.emulator._signing import WebhookSigner, verify
from pika_tasks.emulator._webhooks import RETRIES, retry_delays


def delivery(receiver: LoopbackHttp) -> tuple[dict[str, str], bytes]:
    return receiver.deliveries.get(timeout=20)


def test_deliveries_are_signed_with_the_published_key(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(job_seconds=0.1, fps=2, seed=7)
    with LoopbackHttp() as receiver:
        answer = submit(client, emu.url, image_url=image_uri, params={"fal_webhook": receiver.url})
        headers, body = delivery(receiver)
    jwks = client.get(f"{emu.url}/.well-known/jwks.json").json()
    assert jwks == WebhookSigner(seed=7).jwks()  # the seed's key, so tests can rebuild it
    assert verify(jwks, headers, body)
    assert headers["X-Fal-Webhook-Request-Id"] == answer["request_id"]
    assert abs(int(headers["X-Fal-Webhook-Timestamp"]) - time.time()) < 60
    assert json.loads(body)["status"] == "OK"
    assert not verify(jwks, headers, body.replace(b'"OK"', b'"ERROR"'))
    assert not verify(WebhookSigner(seed=8).jwks(), headers, body)
    assert not verify(jwks, headers, body, now=time.time() + 3600)


def test_a_refused_delivery_is_retried_until_accepted(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(job_seconds=0.1, fps=2, webhook_retry_span=1.0)
    with LoopbackHttp(refuse=2) as receiver:
        answer = submit(client, emu.url, image_url=image_uri, params={"fal_webhook": receiver.url})
        accepted = json.loads(receiver.posts.get(timeout=20))
        attempts = [delivery(receiver) for _ in range(3)]
    assert accepted["request_id"] == answer["request_id"]
    jwks = emu.engine.signer.jwks()
    assert all(verify(jwks, headers, body) for headers, body in attempts)
    wait_until(lambda: emu.stats()["webhooks"] == {"sent": 1, "failed": 0, "retries": 2})
    record = client.get(f"{emu.url}/_emulator/requests/{answer['request_id']}").json()
    assert [item["outcome"] for item in record["webhook_attempts"]] == ["500", "500", "200"]


def test_an_unreachable_receiver_gets_ten_retries_then_is_given_up(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(job_seconds=0.1, fps=2, webhook_retry_span=0.5)
    with LoopbackHttp(refuse=100) as receiver:
        answer = submit(client, emu.url, image_url=image_uri, params={"fal_webhook": receiver.url})
        wait_until(lambda: emu.stats()["webhooks"]["failed"] == 1)
        assert receiver.deliveries.qsize() == RETRIES + 1
        with pytest.raises(queue.Empty):
            receiver.posts.get_nowait()
    record = client.get(f"{emu.url}/_emulator/requests/{answer['request_id']}").json()
    assert len(record["webhook_attempts"]) == RETRIES + 1
    assert emu.stats()["webhooks"]["retries"] == RETRIES


def test_retries_spread_over_two_hours_by_default() -> None:
    delays = retry_delays(7200.0)
    assert len(delays) == RETRIES
    assert sum(delays) == pytest.approx(7200.0)
    assert all(later == pytest.approx(2 * first) for first, later in itertools.pairwise(delays))


def test_a_retried_job_reports_its_last_gateway_request_id(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(runner_failure_rate=1.0, job_seconds=0.2, fps=2)
    with LoopbackHttp() as receiver:
        answer = submit(client, emu.url, image_url=image_uri, params={"fal_webhook": receiver.url})
        body = json.loads(receiver.posts.get(timeout=20))
    assert answer["gateway_request_id"] == answer["request_id"]
    assert body["request_id"] == answer["request_id"]
    assert body["gateway_request_id"] not in ("", answer["request_id"])
    record = client.get(f"{emu.url}/_emulator/requests/{answer['request_id']}").json()
    assert record["attempts"] == 2 and record["gateway_request_id"] == body["gateway_request_id"]
