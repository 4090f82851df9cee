"""One row's straight line against the emulator, without Prefect: plan, submit, wait, fetch,
record; fal's slot is given back before the download, and the image is read once."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fsspec
import pytest
from pipeline_support import row
from support import CountingMemoryFileSystem, png_bytes, probe_video, settings_for

from pika_tasks.budget import Budget
from pika_tasks.claims import ClaimBook, Holder
from pika_tasks.client import PikaClient
from pika_tasks.images import ImageLimits
from pika_tasks.models import (
    DownloadedFile,
    ImageToVideoInput,
    ImageToVideoOutput,
    RequestHandle,
)
from pika_tasks.pipeline import (
    Action,
    ClientSteps,
    Planner,
    RowClaims,
    RowContext,
    RowPlan,
    run_row,
)
from pika_tasks.pricing import PriceTable
from pika_tasks.records import OutputLocation, RowRecord
from pika_tasks.settings import PikaSettings
from pika_tasks.storage import stale_partials, temporary_name

pytestmark = pytest.mark.timeout(60)


class ObservedSteps(ClientSteps):
    """The real client steps, noting when fal's slot is taken and given back, and each fetch."""

    def __init__(self, client: PikaClient, events: list[str]) -> None:
        super().__init__(client, max_concurrency=1)
        self.events = events

    @asynccontextmanager
    async def _observed(self) -> AsyncIterator[None]:
        async with super().slot():
            self.events.append("slot taken")
            try:
                yield
            finally:
                self.events.append("slot given back")

    def slot(self) -> Any:
        return self._observed()

    async def fetch(
        self,
        handle: RequestHandle,
        destination: str,
        label: str,
        output: ImageToVideoOutput | None,
    ) -> DownloadedFile:
        self.events.append("fetch started")
        video = await super().fetch(handle, destination, label, output)
        self.events.append("fetch done")
        return video


@pytest.fixture
def settings(make_emulator: Callable[..., Any]) -> PikaSettings:
    settings: PikaSettings = settings_for(make_emulator(runners=2, job_seconds=0.1, fps=4))
    return settings


def planner_for(out: OutputLocation) -> Planner:
    """A planner whose images may be on loopback (the tests' own files and servers)."""
    return Planner(out, limits=ImageLimits(allow_private_addresses=True))


async def planned(out: OutputLocation, image: Path | str, number: int = 1) -> RowPlan:
    """Row ``number`` of ``image``, planned against ``out``."""
    plan = await planner_for(out).plan(row(number, image=str(image)))
    assert isinstance(plan, RowPlan)
    return plan


def client_rows(
    client: PikaClient, out: OutputLocation, concurrency: int = 1, **extra: Any
) -> RowContext:
    """Rows of one run whose calls go straight to the client (no Prefect)."""
    steps = ClientSteps(client, max_concurrency=concurrency)
    return RowContext(out=out, steps=steps, prices=PriceTable(), **extra)


async def test_a_row_goes_from_its_image_to_a_recorded_video(
    settings: PikaSettings, tmp_path: Path
) -> None:
    root = f"countmem://row-{uuid.uuid4().hex[:8]}"
    fsspec.filesystem("countmem").pipe(f"{root}/a.png", png_bytes())
    out = OutputLocation(str(tmp_path / "out"))
    events: list[str] = []
    async with PikaClient(settings) as client:
        steps = ObservedSteps(client, events)
        planner = Planner(out, limits=ImageLimits(allow_private_addresses=True))
        plan = await planner.plan(row(1, image=f"{root}/a.png"))
        assert isinstance(plan, RowPlan) and plan.action is Action.SUBMIT
        outcome = await run_row(plan, RowContext(out=out, steps=steps, prices=PriceTable()))

    assert outcome.status == "succeeded", outcome.error
    assert (outcome.cost_usd, outcome.action) == (0.2, Action.SUBMIT)
    # fal's slot is held from submit to completion; the video is copied after it is free.
    assert events == ["slot taken", "slot given back", "fetch started", "fetch done"]
    path = f"/{root.removeprefix('countmem://')}/a.png"
    assert CountingMemoryFileSystem.reads[path] == 1, "the image was read more than once"
    record = out.load("r1")
    assert record is not None and record.state == "succeeded"
    assert record.request is not None and outcome.request_id == record.request.request_id
    assert probe_video((tmp_path / "out" / "r1.mp4").read_bytes())["codec"] == "h264"

    # Planned again, the row is done: nothing is read twice for it at fal, nothing is paid.
    replan = await planner.plan(row(1, image=f"{root}/a.png"))
    assert isinstance(replan, RowPlan) and replan.action is Action.SKIP


async def test_the_slot_is_free_for_the_next_row_while_a_video_downloads(
    settings: PikaSettings, tmp_path: Path
) -> None:
    root = f"countmem://rows-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("countmem")
    for n in (1, 2):
        fs.pipe(f"{root}/{n}.png", png_bytes(color=(40 * n, 90, 30)))
    out = OutputLocation(str(tmp_path / "out"))
    events: list[str] = []
    async with PikaClient(settings) as client:
        steps = ObservedSteps(client, events)
        planner = Planner(out, limits=ImageLimits(allow_private_addresses=True))
        ctx = RowContext(out=out, steps=steps, prices=PriceTable())
        plans = [await planner.plan(row(n, image=f"{root}/{n}.png")) for n in (1, 2)]
        outcomes = await asyncio.gather(*(run_row(p, ctx) for p in plans))  # type: ignore[arg-type]
    assert [o.status for o in outcomes] == ["succeeded", "succeeded"]
    # One slot: the second row takes it as soon as the first job is done, not after its copy.
    assert events.count("slot taken") == 2
    second_taken = events.index("slot taken", 1)
    assert second_taken < events.index("fetch done"), events


class FlakyRecords(OutputLocation):
    """An output location whose first write of a ``submitted`` record fails (a storage
    outage of a moment, e.g. S3's SlowDown once s3fs's own retries are spent)."""

    failed = False

    def save(self, record: RowRecord) -> None:
        if record.state == "submitted" and not self.failed:
            self.failed = True
            raise OSError("SlowDown: please reduce your request rate")
        super().save(record)


async def test_a_record_that_cannot_be_written_after_the_submit_loses_no_request(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    """fal queued (and bills) the job: the row goes on with its request in hand, keeps its
    money reserved and writes its record when it ends, instead of failing with the request
    known only to a log line and the next run asking to pay for it again."""
    emu = make_emulator(runners=2, job_seconds=0.1, fps=4)
    (tmp_path / "a.png").write_bytes(png_bytes())
    out = FlakyRecords(str(tmp_path / "out"))
    budget = Budget(limit_usd=1.0)
    async with PikaClient(settings_for(emu)) as client:
        plan = await planned(out, tmp_path / "a.png")
        ctx = client_rows(client, out, budget=budget)
        outcome = await run_row(plan, ctx)
    assert out.failed, "the fault was not met"
    assert (outcome.status, outcome.error) == ("succeeded", None)
    assert emu.stats()["submissions"] == 1
    record = out.load(outcome.id)
    assert record is not None and record.state == "succeeded"
    assert record.request is not None and record.request.request_id == outcome.request_id
    assert budget.spent_usd == pytest.approx(0.20)


async def test_the_temporaries_a_killed_run_left_for_a_row_are_removed_by_the_run_that_makes_it(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    """A run killed mid-download, or while saving a record (a synced save takes a
    moment), leaves hidden temporaries; the next run that makes the row removes them."""
    emu = make_emulator(runners=1, job_seconds=0.1, fps=4)
    (tmp_path / "a.png").write_bytes(png_bytes())
    folder = tmp_path / "out"
    folder.mkdir()
    left = [folder / temporary_name("r1.mp4"), folder / temporary_name("r1.json")]
    other = folder / temporary_name("r2.json")
    for path in (*left, other):
        path.write_bytes(b"half")
    out = OutputLocation(str(folder))
    async with PikaClient(settings_for(emu)) as client:
        ctx = client_rows(client, out, stale_partials=stale_partials(str(folder)))
        outcome = await run_row(await planned(out, tmp_path / "a.png"), ctx)
    assert outcome.status == "succeeded", outcome.error
    assert not any(path.exists() for path in left)
    assert other.exists()  # another row's: left to the run that makes that row


async def test_a_video_gone_at_fal_is_recorded_so_the_next_run_submits_the_row(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    """The result is still at fal but its video file has expired (a short object lifecycle),
    and the copy written before was deleted: the row fails saying so, and its record no
    longer sends every later run back to the same missing file."""
    emu = make_emulator(runners=2, job_seconds=0.1, fps=4)
    (tmp_path / "a.png").write_bytes(png_bytes())
    out = OutputLocation(str(tmp_path / "out"))
    async with PikaClient(settings_for(emu)) as client:

        async def run_once(run_id: str) -> Any:
            plan = await planned(out, tmp_path / "a.png")
            return plan.action, await run_row(plan, client_rows(client, out, run_id=run_id))

        action, first = await run_once("run-1")
        assert (action, first.status) == (Action.SUBMIT, "succeeded")
        (tmp_path / "out" / "r1.mp4").unlink()
        assert first.request_id is not None and emu.expire(first.request_id, videos_only=True)

        action, second = await run_once("run-2")
        assert (action, second.status) == (Action.REATTACH, "failed")
        assert second.error is not None and "submits the row again" in second.error
        record = out.load("r1")
        assert record is not None and record.state == "failed"
        # The run that re-attached is named, and the one that paid is kept.
        assert (record.flow_run_id, record.submitted_by) == ("run-2", "run-1")

        action, third = await run_once("run-3")
        assert (action, third.status) == (Action.SUBMIT, "succeeded")
        record = out.load("r1")
        assert record is not None and record.submitted_by == "run-3"
    assert emu.stats()["submissions"] == 2
    assert (tmp_path / "out" / "r1.mp4").exists()


async def test_an_image_that_changed_before_its_submit_fails_its_row_naming_the_field(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    emu = make_emulator(runners=2, job_seconds=0.1, fps=4)
    image = tmp_path / "a.png"
    image.write_bytes(png_bytes())
    out = OutputLocation(str(tmp_path / "out"))
    async with PikaClient(settings_for(emu)) as client:
        plan = await planned(out, image)
        plan.check.drop_data()  # read again at the submit, as a row planned long before is
        image.write_bytes(png_bytes(color=(10, 200, 40)))
        ctx = client_rows(client, out)
        outcome = await run_row(plan, ctx)
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error.startswith("row 1, field 'image': ")
    assert "changed since it was inspected" in outcome.error
    assert emu.stats()["submissions"] == 0


class LeaseLapsesInTheSlotWait(ClientSteps):
    """fal's slot takes so long to come that the row's lease lapses meanwhile, and another
    run takes the row over (a stalled process, a store refusing the renewals)."""

    def __init__(self, client: PikaClient, book: ClaimBook) -> None:
        super().__init__(client, max_concurrency=1)
        self.book = book

    @asynccontextmanager
    async def _lapsing(self) -> AsyncIterator[None]:
        stale = self.book.current("r1")
        assert stale is not None
        assert self.book.take("r1", Holder(flow_run_id="two"), over=stale) is not None
        async with super().slot():
            yield

    def slot(self) -> Any:
        return self._lapsing()


async def test_a_row_whose_claim_lapsed_while_it_waited_is_not_paid_for_by_this_run(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    emu = make_emulator(runners=2, job_seconds=0.1, fps=4)
    (tmp_path / "a.png").write_bytes(png_bytes())
    out = OutputLocation(str(tmp_path / "out"))
    book = ClaimBook(out)
    async with PikaClient(settings_for(emu)) as client:
        plan = await planned(out, tmp_path / "a.png")
        ctx = client_rows(client, out, claims=RowClaims(book, Holder(flow_run_id="one")))
        ctx.steps = LeaseLapsesInTheSlotWait(client, book)
        outcome = await run_row(plan, ctx)
    assert (outcome.status, outcome.action) == ("skipped", "held")
    assert outcome.error is not None and "its claim lapsed" in outcome.error
    assert emu.stats()["submissions"] == 0
    assert out.load("r1") is None, "no intent was written for a row this run gave up"
    current = book.current("r1")
    assert current is not None and current.holder.flow_run_id == "two"


async def test_rows_a_cancelled_run_left_are_fetched_if_fal_finished_them_else_submitted(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    """A cancel only signals a running job, and a hook whose cancel call failed records the
    row cancelled all the same: the next run looks at the request before paying again."""
    emu = make_emulator(runners=2, job_seconds=0.1, fps=4)
    (tmp_path / "a.png").write_bytes(png_bytes())
    out = OutputLocation(str(tmp_path / "out"))
    async with PikaClient(settings_for(emu)) as client:
        ctx = client_rows(client, out, 2)
        plans = [await planned(out, tmp_path / "a.png", n) for n in (1, 2)]
        image = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
        arguments = ImageToVideoInput(image_url=image, prompt="zoom in")
        finished_anyway = await client.submit(arguments)
        await client.wait(finished_anyway)
        emu.pause()
        stopped = await client.submit(arguments)
        assert (await client.cancel(stopped)).status == "CANCELLATION_REQUESTED"
        emu.resume()
        for plan, handle in zip(plans, (finished_anyway, stopped), strict=True):
            out.save(
                RowRecord(
                    id=plan.row.id,
                    state="cancelled",
                    fingerprint=plan.fingerprint,
                    request=handle,
                    error="flow run cancelled",
                )
            )

        replanned = [await planned(out, tmp_path / "a.png", n) for n in (1, 2)]
        outcomes = [await run_row(plan, ctx) for plan in replanned]
    assert [(o.status, o.action) for o in outcomes] == [
        ("succeeded", Action.REATTACH),
        ("succeeded", "resubmit-cancelled"),
    ]
    assert outcomes[0].request_id == finished_anyway.request_id and outcomes[0].cost_usd == 0.0
    assert outcomes[1].request_id != stopped.request_id and outcomes[1].cost_usd == 0.2
    assert emu.stats()["submissions"] == 3  # the two before, and the stopped row once more


class FailingFinalRecord(OutputLocation):
    """An output location that cannot write a row's finished record (the store went away)."""

    def save(self, record: RowRecord) -> None:
        if record.state == "succeeded":
            raise OSError("the bucket refused the write")
        super().save(record)


async def test_a_paid_row_that_cannot_record_its_end_reports_what_it_paid(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    emu = make_emulator(runners=2, job_seconds=0.1, fps=4)
    (tmp_path / "a.png").write_bytes(png_bytes())
    out = FailingFinalRecord(str(tmp_path / "out"))
    async with PikaClient(settings_for(emu)) as client:
        plan = await planned(out, tmp_path / "a.png")
        ctx = client_rows(client, out)
        outcome = await run_row(plan, ctx)
    assert outcome.status == "failed"
    assert outcome.error == "OSError: the bucket refused the write"
    assert outcome.cost_usd == 0.2 and outcome.request_id is not None
    record = out.load("r1")
    assert record is not None and record.state == "submitted"  # the next run re-attaches
