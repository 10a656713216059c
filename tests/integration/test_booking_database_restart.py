"""PostgreSQL restarted in the middle of a sale: fans keep reserving, paying and confirming (retrying with the same
request id, as clients do) while a private cluster this test starts is stopped hard and started again. No payment
that succeeded is lost (every one ends confirmed, or refunded when its seat went to someone else), no seat is sold
twice, and booking answers again within 5 s of the database coming back."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from booking_svc.reconcile import reconcile_bookings
from tests.factories import create_event
from tests.integration.booking_harness import (
    assert_never_sold_twice,
    booking_settings,
    build_world,
    named,
    pay_as_fan,
    refunds_of,
)
from tix.db import create_engine, ensure_database
from tix.errors import Aborted, DomainError, Unavailable
from tix.migrate import upgrade
from tix.settings import TixSettings
from tix_dev.readiness import free_port

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

PG_BIN = Path("/usr/lib/postgresql/15/bin")
FANS = 40
BACK_WITHIN_SECONDS = 5.0


class PrivateCluster:
    """A PostgreSQL cluster of this test's own (initdb + pg_ctl), so restarting it disturbs nobody else."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tix-pg-"))
        self.data = self.dir / "data"
        self.socket_dir = self.dir / "sock"
        self.socket_dir.mkdir()
        # initdb and postgres refuse to run as root: run them as the postgres user then.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.dir, "postgres")
            shutil.chown(self.socket_dir, "postgres")

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> PrivateCluster:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.socket_dir} -c fsync=off"
            " -c max_connections=60 -c shared_buffers=32MB"
        )
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"),
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    if not (PG_BIN / "pg_ctl").exists():
        pytest.skip("PostgreSQL 15 server binaries are not installed")
    private = PrivateCluster().init()
    private.start()
    try:
        yield private
    finally:
        try:
            private.stop("immediate")
        finally:
            private.remove()


async def _until_ok(call, deadline: float):
    """What a client does: retry failures that are not an answer (the database is away, or UNAVAILABLE) until the
    call answers; the same request id makes retries safe."""
    while True:
        try:
            return await call()
        except DomainError as answer:
            if not isinstance(answer, Unavailable) or time.monotonic() > deadline:
                raise
        except Exception:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


async def test_a_postgresql_restart_in_the_middle_of_a_sale_loses_no_payment_and_sells_no_seat_twice(
    cluster, settings_env, redis, redis_url, localstripe_url
):
    url = cluster.url("tix_restart")
    await ensure_database(url)
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(TixSettings(), pool_size=10, url=url)
    world = await build_world(engine, booking_settings(localstripe_url, redis_url=redis_url), redis_url)
    try:
        event = await create_event(engine)
        # Fewer seats than fans, so fans collide on seats while the database goes away.
        contested = event.seat_ids[:30]
        rng = random.Random(7)
        paid: dict[str, str] = {}  # payment intent -> booking id
        confirmed_before_restart: set[str] = set()
        restarted = asyncio.Event()
        sale_deadline = time.monotonic() + 60

        async def fan(n: int, seat: str | None = None, arrival: float = 4.0) -> None:
            await asyncio.sleep(rng.random() * arrival)  # fans arrive over a few seconds; the restart lands among them
            seat = seat or rng.choice(contested)
            request = named(f"fan-{n}", event.event_id, seat, request_id=f"r-{n}")
            try:
                booking = await _until_ok(lambda: world.service.reserve_seats(request), sale_deadline)
            except Aborted:  # lost the seat to another fan: the answer a client gets
                return
            await pay_as_fan(localstripe_url, booking.payment_intent_id)
            paid[booking.payment_intent_id] = str(booking.booking_id)
            done = await _until_ok(
                lambda: world.service.confirm_booking(f"fan-{n}", booking.booking_id), sale_deadline
            )
            if done.status == "confirmed" and not restarted.is_set():
                confirmed_before_restart.add(str(booking.booking_id))

        async def restart() -> float:
            await asyncio.sleep(2.0)
            await asyncio.to_thread(cluster.stop, "immediate")  # as a crash: no checkpoint, recovery from WAL
            restarted.set()
            await asyncio.sleep(1.0)
            await asyncio.to_thread(cluster.start)
            return time.monotonic()

        probe_booking = await world.service.reserve_seats(named("prober", event.event_id, event.seat_ids[-1]))

        async def first_answer_after(back: asyncio.Future[float]) -> float:
            came_back = await back
            while True:
                try:
                    await world.service.get_booking("prober", probe_booking.booking_id)
                    return time.monotonic() - came_back
                except Exception:  # noqa: BLE001 - still reconnecting
                    await asyncio.sleep(0.05)

        # Some fans have paid and been confirmed before the database goes away.
        early = event.seat_ids[40:48]
        await asyncio.gather(*(fan(FANS + i, seat, arrival=0.0) for i, seat in enumerate(early)))
        assert len(confirmed_before_restart) == len(early)
        back = asyncio.ensure_future(restart())
        answered_after, *_ = await asyncio.gather(
            first_answer_after(back), *(fan(n) for n in range(FANS))
        )
        assert answered_after <= BACK_WITHIN_SECONDS, f"booking answered {answered_after:.1f}s after the database"

        # The webhooks of the outage may be lost too: reconcile settles what the fans' confirms did not.
        report = await reconcile_bookings(world.service, world.repository, world.payments, apply=True)
        assert report.consistent(applied=True), report.summary()

        assert paid, "no fan got to pay: the restart did not land in a sale"
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT booking_id::text, status FROM bookings WHERE booking_id = ANY(CAST(:ids AS uuid[]))"),
                {"ids": list(paid.values())},
            )
            status = {r.booking_id: r.status for r in rows}
        for intent, booking_id in paid.items():
            outcome = status.get(booking_id)
            if outcome == "refunded":
                assert await refunds_of(localstripe_url, intent), f"{booking_id} refunded without a refund"
            else:
                assert outcome == "confirmed", f"{booking_id} paid ({intent}) but {outcome}"
        assert confirmed_before_restart <= {b for b, s in status.items() if s == "confirmed"}
        await assert_never_sold_twice(engine, event.event_id)
    finally:
        await world.aclose()
        await engine.dispose()
