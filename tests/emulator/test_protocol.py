"""The queue protocol over real loopback HTTP: submit, status, result, auth, validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from emulator_support import ENDPOINT, submit, wait_completed
from support import wait_until

from pika_tasks.models import ImageToVideoOutput, QueueStatus, RequestHandle


def test_submit_answers_with_urls_under_the_owner_app_prefix(
    emulator: Any, client: httpx.Client, image_uri: str
) -> None:
    answer = submit(client, emulator.url, image_url=image_uri)
    request_id = answer["request_id"]
    root = f"{emulator.url}/fal-ai/pika/requests/{request_id}"
    assert answer["status"] == "IN_QUEUE"
    assert answer["status_url"] == f"{root}/status"
    assert answer["response_url"] == root
    assert answer["cancel_url"] == f"{root}/cancel"
    assert isinstance(answer["queue_position"], int)
    RequestHandle(endpoint_id="fal-ai/pika/v2.2/image-to-video", **answer)  # the client's model


def test_status_goes_202_then_200_with_logs_and_metrics(
    emulator: Any, client: httpx.Client, image_uri: str
) -> None:
    answer = submit(client, emulator.url, image_url=image_uri, prompt="zoom in")
    seen: list[tuple[int, str]] = []

    def completed() -> bool:
        response = client.get(answer["status_url"], params={"logs": "1"})
        seen.append((response.status_code, response.json()["status"]))
        return response.status_code == 200

    wait_until(completed)
    assert all(code == 202 for code, state in seen if state != "COMPLETED")
    assert seen[-1] == (200, "COMPLETED")
    final = QueueStatus.model_validate(
        client.get(answer["status_url"], params={"logs": "1"}).json()
    )
    assert final.done and not final.failed
    assert final.metrics is not None and final.metrics["inference_time"] >= 0.2
    assert isinstance(final.logs, list) and final.logs
    assert {"message", "level", "source", "timestamp"} <= set(final.logs[0])
    assert any("zoom in" in line["message"] for line in final.logs)
    without_logs = client.get(answer["status_url"]).json()
    assert without_logs["logs"] is None  # present but empty, as fal-client expects


def test_result_before_completion_is_400_then_the_video(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(job_seconds=0.6, fps=2)
    answer = submit(client, emu.url, image_url=image_uri)
    early = client.get(answer["response_url"])
    assert early.status_code == 400
    assert early.json() == {"detail": "Request is still in progress"}
    wait_completed(client, answer["status_url"])
    result = client.get(answer["response_url"])
    assert result.status_code == 200
    output = ImageToVideoOutput.model_validate(result.json())
    assert output.video.content_type == "video/mp4"
    assert output.video.url.startswith(f"{emu.url}/files/")
    assert output.video.file_name and output.video.file_name.endswith(".mp4")
    video = client.get(output.video.url)
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert int(video.headers["content-length"]) == output.video.file_size == len(video.content)


def test_routes_answer_under_both_prefixes(
    emulator: Any, client: httpx.Client, image_uri: str
) -> None:
    answer = submit(client, emulator.url, image_url=image_uri)
    request_id = answer["request_id"]
    wait_completed(client, answer["status_url"])
    record = client.get(f"{emulator.url}/_emulator/requests/{request_id}").json()
    assert len(image_uri) > 1000 and len(record["input"]["image_url"]) < 200  # not kept
    for prefix in ("fal-ai/pika", "fal-ai/pika/v2.2/image-to-video"):
        root = f"{emulator.url}/{prefix}/requests/{request_id}"
        assert client.get(f"{root}/status").json()["status"] == "COMPLETED"
        assert client.get(f"{root}/status/").status_code == 200  # older clients' slash
        assert client.get(root).json()["video"]["file_size"] > 0
        assert client.put(f"{root}/cancel").status_code == 400
        with client.stream("GET", f"{root}/status/stream") as stream:
            assert stream.status_code == 200
            assert "COMPLETED" in stream.read().decode()


def test_unknown_request_is_404_everywhere(emulator: Any, client: httpx.Client) -> None:
    root = f"{emulator.url}/fal-ai/pika/requests/00000000-0000-0000-0000-000000000000"
    for response in (
        client.get(f"{root}/status"),
        client.get(root),
        client.get(f"{root}/status/stream"),
    ):
        assert response.status_code == 404
        assert "detail" in response.json()
    cancel = client.put(f"{root}/cancel")
    assert (cancel.status_code, cancel.json()) == (404, {"status": "NOT_FOUND"})
    other = client.get(f"{emulator.url}/no/such/route")
    assert other.status_code == 404 and other.json() == {"detail": "Not Found"}


def test_invalid_input_is_422_with_fal_detail_and_not_retryable(
    emulator: Any, client: httpx.Client, image_uri: str
) -> None:
    url = f"{emulator.url}{ENDPOINT}"
    bad_resolution = client.post(
        url, json={"image_url": image_uri, "prompt": "x", "resolution": "4k"}
    )
    assert bad_resolution.status_code == 422
    assert bad_resolution.headers["x-fal-retryable"] == "false"
    (item,) = bad_resolution.json()["detail"]
    assert item["loc"] == ["body", "resolution"]
    assert {"msg", "type"} <= set(item)
    missing = client.post(url, json={"prompt": "x"}).json()["detail"]
    assert [entry["loc"] for entry in missing] == [["body", "image_url"]]
    assert len(str(missing)) < 2000  # long inputs are shortened
    not_json = client.post(url, content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 422
    bad_duration = client.post(url, json={"image_url": image_uri, "prompt": "x", "duration": 7})
    assert bad_duration.json()["detail"][0]["loc"] == ["body", "duration"]
    bad_header = client.post(
        url,
        json={"image_url": image_uri, "prompt": "x"},
        headers={"X-Fal-Request-Timeout": "soon"},
    )
    assert bad_header.status_code == 422
    assert bad_header.json()["detail"][0]["loc"] == ["header", "X-Fal-Request-Timeout"]
    assert emulator.stats()["submissions"] == 0
    assert emulator.stats()["rejected"]["422"] == 5


def test_key_is_required_when_configured_and_never_echoed(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(require_key="s3cret-key", job_seconds=0.1, fps=2)
    body = {"image_url": image_uri, "prompt": "x"}
    missing = client.post(f"{emu.url}{ENDPOINT}", json=body)
    wrong = client.post(f"{emu.url}{ENDPOINT}", json=body, headers={"Authorization": "Key nope"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert "detail" in response.json()
        assert "s3cret" not in response.text
    good = submit(client, emu.url, image_url=image_uri, headers={"Authorization": "Key s3cret-key"})
    assert client.get(good["status_url"]).status_code == 401
    status = client.get(good["status_url"], headers={"Authorization": "Key s3cret-key"})
    assert status.status_code in (200, 202)
    assert emu.stats()["rejected"]["401"] == 3


def test_urls_follow_the_host_the_client_used(
    emulator: Any, client: httpx.Client, image_uri: str
) -> None:
    answer = submit(
        client,
        emulator.url,
        image_url=image_uri,
        headers={"Host": "queue.example.test:4321", "X-Forwarded-Proto": "https"},
    )
    assert answer["status_url"].startswith("https://queue.example.test:4321/fal-ai/pika/requests/")


def test_submit_options_are_recorded(emulator: Any, client: httpx.Client, image_uri: str) -> None:
    answer = submit(
        client,
        emulator.url,
        image_url=image_uri,
        headers={
            "X-Fal-Request-Timeout": "30",
            "X-Fal-Queue-Priority": "low",
            "X-Fal-No-Retry": "1",
            "X-Fal-Store-IO": "0",
            "X-Fal-Object-Lifecycle-Preference": '{"expiration_duration_seconds": 600}',
        },
        params={"fal_webhook": "http://127.0.0.1:9/unreachable"},
        seed=42,
    )
    record = client.get(f"{emulator.url}/_emulator/requests/{answer['request_id']}").json()
    assert record["priority"] == "low" and record["no_retry"] and not record["store_io"]
    assert record["start_timeout"] == 30 and record["object_expiry_seconds"] == 600
    assert record["webhook_url"] == "http://127.0.0.1:9/unreachable"
    assert record["seed"] == 42 and record["input"]["seed"] == 42
    options = emulator.stats()["submit_options"]
    assert options["X-Fal-Queue-Priority"] == 1 and options["fal_webhook"] == 1


def test_queue_length_limit_answers_429(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(runners=1, job_seconds=5.0, fps=2)
    params = {"fal_max_queue_length": "1"}
    submit(client, emu.url, image_url=image_uri, params=params)  # runs
    submit(client, emu.url, image_url=image_uri, params=params)  # waits
    refused = client.post(
        f"{emu.url}{ENDPOINT}", json={"image_url": image_uri, "prompt": "x"}, params=params
    )
    assert refused.status_code == 429
    assert refused.json()["error_type"] == "queue_full"
    assert refused.headers["x-fal-error-type"] == "queue_full"
    assert emu.stats()["submissions"] == 2
