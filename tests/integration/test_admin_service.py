"""Operator controls (AdminService) over gRPC, against the real stores, a real queue service and localstripe: the
waiting room follows the operator's switches, sales open, close and cancel, any fan's booking can be looked up,
cancelled or refunded, and every change names its operator in the audit log."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from admin_svc.server import SERVICE as ADMIN
from admin_svc.settings import AdminSettings
from queue_svc.server import SERVICE as QUEUE
from queue_svc.settings import QueueSettings
from tests.factories import create_event
from tests.integration.booking_harness import (
    WEBHOOK_SECRET,
    assert_never_sold_twice,
    booking_world,
    intent_object,
    named,
    pay_as_fan,
    refunds_of,
    ticket_states,
)
from tix.audit import OPERATOR_METADATA_KEY
from tix.server import start_server
from tix.settings import DEVELOPMENT_STRIPE_API_KEY
from tixpb.v1 import admin_pb2, admin_pb2_grpc, booking_pb2, event_pb2, queue_pb2, queue_pb2_grpc

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

OPERATOR = (OPERATOR_METADATA_KEY, "ops-ana")


@pytest.fixture
async def admin(db, redis, localstripe_url, settings_env):
    settings = AdminSettings(
        port=0, db_pool_size=4, stripe_api_base=localstripe_url, stripe_api_key=DEVELOPMENT_STRIPE_API_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET, stripe_requests_per_second=1000.0,
    )
    server = await start_server(ADMIN, settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    yield admin_pb2_grpc.AdminServiceStub(channel), server.port
    await channel.close()
    await server.stop(grace=0)


@pytest.fixture
async def queue(db, redis, settings_env):
    settings = QueueSettings(port=0, tick_seconds=0.05, heartbeat_seconds=1.0, event_cache_seconds=0.2, db_pool_size=4)
    server = await start_server(QUEUE, settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    yield queue_pb2_grpc.QueueServiceStub(channel)
    await channel.close()
    await server.stop(grace=0)


async def _audit(db) -> list[tuple[str, str, str]]:
    async with db.connect() as conn:
        rows = await conn.execute(text("SELECT actor, action, target FROM audit_log ORDER BY audit_id"))
        return [tuple(row) for row in rows]


async def _join(queue, event_id: int, fans: range) -> list[queue_pb2.QueueTicket]:
    return list(
        await asyncio.gather(
            *(
                queue.JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=(("x-user-id", f"fan-{n}"),))
                for n in fans
            )
        )
    )


async def _watch(queue, event_id: int, ticket_id: str, user: str) -> None:
    """A fan keeping the queue page open (the room advances while its fans watch)."""
    request = queue_pb2.WatchQueueRequest(event_id=str(event_id), ticket_id=ticket_id)
    async for _ in queue.WatchQueue(request, metadata=(("x-user-id", user),)):
        pass


async def _status(stub, event_id: int) -> admin_pb2.WaitingRoomStatus:
    return await stub.GetWaitingRoom(admin_pb2.GetWaitingRoomRequest(event_id=str(event_id)), metadata=(OPERATOR,))


async def test_every_call_names_its_operator(admin, db):
    stub, _ = admin
    event = await create_event(db)
    request = admin_pb2.PauseWaitingRoomRequest(event_id=str(event.event_id))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.PauseWaitingRoom(request)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "OPERATOR_REQUIRED" in str(caught.value.trailing_metadata())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.PauseWaitingRoom(request, metadata=((OPERATOR_METADATA_KEY, "ops ana; DROP"),))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await _audit(db) == []


async def test_admissions_follow_the_operators_switches(admin, queue, db):
    stub, _ = admin
    event = await create_event(db, queue_enabled=False)
    event_id = str(event.event_id)
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE events SET sale_starts_at = :s WHERE event_id = :e"),
            {"s": datetime.now(UTC) - timedelta(minutes=1), "e": event.event_id},
        )
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # no room yet: fans reserve directly
        await _join(queue, event.event_id, range(1))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    await stub.SetAdmissionRate(admin_pb2.SetAdmissionRateRequest(event_id=event_id, rate_per_second=20), metadata=(OPERATOR,))
    await stub.PauseWaitingRoom(admin_pb2.PauseWaitingRoomRequest(event_id=event_id), metadata=(OPERATOR,))
    enabled = await stub.EnableWaitingRoom(
        admin_pb2.EnableWaitingRoomRequest(event_id=event_id, reason="on-sale"), metadata=(OPERATOR,)
    )
    assert (enabled.enabled, enabled.paused, enabled.rate_per_second) == (True, True, 20)
    await asyncio.sleep(0.3)  # the queue re-reads settings every 0.2 s here
    counted_before = REGISTRY.get_sample_value("tix_queue_admitted_total", {"event_id": event_id}) or 0.0
    tickets = await _join(queue, event.event_id, range(60))
    watchers = [asyncio.create_task(_watch(queue, event.event_id, t.ticket_id, f"fan-{n}")) for n, t in enumerate(tickets)]

    await asyncio.sleep(1.0)
    paused = await _status(stub, event.event_id)
    assert (paused.waiting, paused.admitted) == (60, 0), "a paused room admits nobody"
    assert not paused.HasField("estimated_time_to_clear")

    await stub.ResumeWaitingRoom(admin_pb2.ResumeWaitingRoomRequest(event_id=event_id), metadata=(OPERATOR,))
    started = time.monotonic()
    await asyncio.sleep(1.5)
    running = await _status(stub, event.event_id)
    elapsed = time.monotonic() - started
    # 20 fans a second once the queue has seen the change (within its 0.2 s cache) and a tick has run.
    assert 10 <= running.admitted <= 20 * elapsed + 1, running
    assert running.waiting == 60 - running.admitted
    assert running.active_shoppers == running.admitted
    assert running.estimated_time_to_clear.seconds >= running.waiting // 20 - 1

    await stub.PauseWaitingRoom(admin_pb2.PauseWaitingRoomRequest(event_id=event_id), metadata=(OPERATOR,))
    await asyncio.sleep(0.5)  # in-flight ticks finish within the cache time
    frozen = (await _status(stub, event.event_id)).admitted
    await asyncio.sleep(1.0)
    assert (await _status(stub, event.event_id)).admitted == frozen, "admissions stop while paused"

    capped = await stub.SetMaxActiveShoppers(
        admin_pb2.SetMaxActiveShoppersRequest(event_id=event_id, max_active=frozen), metadata=(OPERATOR,)
    )
    assert capped.max_active == frozen
    await stub.ResumeWaitingRoom(admin_pb2.ResumeWaitingRoomRequest(event_id=event_id), metadata=(OPERATOR,))
    await asyncio.sleep(1.0)
    assert (await _status(stub, event.event_id)).admitted == frozen, "the shopper cap binds"
    # What the alerts watch (k8s/components/monitoring): admissions counted once, the line, the cap, the pause.
    counted = REGISTRY.get_sample_value("tix_queue_admitted_total", {"event_id": event_id}) - counted_before
    assert counted == frozen
    assert REGISTRY.get_sample_value("tix_queue_waiting", {"event_id": event_id}) == 60 - frozen
    assert REGISTRY.get_sample_value("tix_queue_max_active_shoppers", {"event_id": event_id}) == frozen
    assert REGISTRY.get_sample_value("tix_queue_paused", {"event_id": event_id}) == 0

    for watcher in watchers:
        watcher.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SetAdmissionRate(admin_pb2.SetAdmissionRateRequest(event_id=event_id, rate_per_second=0), metadata=(OPERATOR,))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [action for _, action, _ in await _audit(db)] == [
        "waiting_room.set_rate", "waiting_room.pause", "waiting_room.enable", "waiting_room.resume",
        "waiting_room.pause", "waiting_room.set_max_active", "waiting_room.resume",
    ]
    assert {(actor, target) for actor, _, target in await _audit(db)} == {("ops-ana", f"event:{event_id}")}


async def test_an_unknown_event_is_not_found_and_nothing_is_audited(admin, db):
    stub, _ = admin
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.EnableWaitingRoom(admin_pb2.EnableWaitingRoomRequest(event_id="424242"), metadata=(OPERATOR,))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert await _audit(db) == []


async def test_a_closed_sale_turns_fans_away_and_opens_again(admin, queue, db):
    stub, _ = admin
    event = await create_event(db, queue_enabled=True)
    event_id = str(event.event_id)
    async with db.connect() as conn:
        before = await conn.scalar(text("SELECT coalesce(max(outbox_id), 0) FROM outbox"))
    closed = await stub.CloseSale(admin_pb2.CloseSaleRequest(event_id=event_id, reason="venue issue"), metadata=(OPERATOR,))
    assert closed.status == event_pb2.SALE_STATUS_ENDED
    assert closed.HasField("sale_end_time")
    await asyncio.sleep(0.3)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _join(queue, event.event_id, range(1))
    assert "SALE_ENDED" in str(caught.value.trailing_metadata())

    opened = await stub.OpenSale(admin_pb2.OpenSaleRequest(event_id=event_id), metadata=(OPERATOR,))
    assert opened.status == event_pb2.SALE_STATUS_ON_SALE
    assert not opened.HasField("sale_end_time")
    await asyncio.sleep(0.3)
    [ticket] = await _join(queue, event.event_id, range(1))
    assert ticket.ticket_id

    cancelled = await stub.CancelSale(admin_pb2.CancelSaleRequest(event_id=event_id), metadata=(OPERATOR,))
    assert (cancelled.status, cancelled.cancelled) == (event_pb2.SALE_STATUS_CANCELLED, True)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.OpenSale(admin_pb2.OpenSaleRequest(event_id=event_id), metadata=(OPERATOR,))
    assert "EVENT_CANCELLED" in str(caught.value.trailing_metadata())
    assert [action for _, action, _ in await _audit(db)] == ["sale.close", "sale.open", "sale.cancel"]
    async with db.connect() as conn:
        topics = (
            await conn.execute(
                text("SELECT topic, aggregate_id FROM outbox WHERE outbox_id > :b ORDER BY outbox_id"), {"b": before}
            )
        ).all()
    assert [tuple(t) for t in topics] == [("event", event_id)] * 3, "search documents follow the sale"


async def test_an_operator_cancels_a_reservation_and_refunds_a_paid_booking(
    admin, db, redis, redis_url, localstripe_url
):
    stub, _ = admin
    event = await create_event(db)
    async with booking_world(db, redis_url, localstripe_url) as world:
        unpaid = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
        paid = await world.service.reserve_seats(named("fan-2", event.event_id, event.seat_ids[1], event.seat_ids[2]))
        await pay_as_fan(localstripe_url, paid.payment_intent_id)
        assert (await world.service.confirm_booking("fan-2", paid.booking_id)).status == "confirmed"

    shown = await stub.GetBooking(admin_pb2.AdminServiceGetBookingRequest(booking_id=str(unpaid.booking_id)), metadata=(OPERATOR,))
    assert (shown.user_id, shown.status) == ("fan-1", booking_pb2.BOOKING_STATUS_RESERVED)

    with pytest.raises(grpc.aio.AioRpcError) as caught:  # a paid booking is refunded, not cancelled
        await stub.CancelBooking(admin_pb2.AdminServiceCancelBookingRequest(booking_id=str(paid.booking_id)), metadata=(OPERATOR,))
    assert "BOOKING_CONFIRMED" in str(caught.value.trailing_metadata())
    cancelled = await stub.CancelBooking(
        admin_pb2.AdminServiceCancelBookingRequest(booking_id=str(unpaid.booking_id), reason="duplicate order"),
        metadata=(OPERATOR,),
    )
    assert cancelled.status == booking_pb2.BOOKING_STATUS_CANCELLED
    assert cancelled.status_reason == "duplicate order"
    assert (await intent_object(localstripe_url, unpaid.payment_intent_id))["status"] == "canceled"

    refunded = await stub.RefundBooking(
        admin_pb2.RefundBookingRequest(booking_id=str(paid.booking_id), reason="fan cannot attend"), metadata=(OPERATOR,)
    )
    assert refunded.status == booking_pb2.BOOKING_STATUS_REFUNDED
    assert refunded.payment.status == booking_pb2.PAYMENT_STATUS_REFUNDED
    [refund] = await refunds_of(localstripe_url, paid.payment_intent_id)
    assert refund["amount"] == paid.total_minor
    again = await stub.RefundBooking(admin_pb2.RefundBookingRequest(booking_id=str(paid.booking_id)), metadata=(OPERATOR,))
    assert again.status == booking_pb2.BOOKING_STATUS_REFUNDED
    assert len(await refunds_of(localstripe_url, paid.payment_intent_id)) == 1, "refunding twice refunds once"

    tickets = await ticket_states(db, event.event_id)
    assert {tickets[s][0] for s in event.seat_ids[:3]} == {"available"}, "the seats are on sale again"
    assert await redis.exists(*(f"tix:hold:{{{event.event_id}}}:{s}" for s in event.seat_ids[:3])) == 0
    await assert_never_sold_twice(db, event.event_id)
    assert await _audit(db) == [
        ("ops-ana", "booking.cancel", f"booking:{unpaid.booking_id}"),
        ("ops-ana", "booking.refund", f"booking:{paid.booking_id}"),
        ("ops-ana", "booking.refund", f"booking:{paid.booking_id}"),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RefundBooking(admin_pb2.RefundBookingRequest(booking_id=str(unpaid.booking_id)), metadata=(OPERATOR,))
    assert "BOOKING_NOT_CONFIRMED" in str(caught.value.trailing_metadata())


async def test_reconcile_through_the_admin_service_repairs_a_lost_webhook(admin, db, redis, redis_url, localstripe_url):
    stub, _ = admin
    event = await create_event(db)
    async with booking_world(db, redis_url, localstripe_url) as world:
        booking = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
        await pay_as_fan(localstripe_url, booking.payment_intent_id)  # and the webhook never came

        dry = await stub.ReconcileBookings(admin_pb2.ReconcileBookingsRequest(dry_run=True), metadata=(OPERATOR,))
        assert (dry.paid_not_confirmed, dry.consistent) == (1, False)
        recent = admin_pb2.ReconcileBookingsRequest(dry_run=True)
        recent.since.FromSeconds(3600)
        assert (await stub.ReconcileBookings(recent, metadata=(OPERATOR,))).paid_not_confirmed == 1
        applied = await stub.ReconcileBookings(admin_pb2.ReconcileBookingsRequest(), metadata=(OPERATOR,))
        assert (applied.repaired, applied.consistent) == (1, True)
        assert (await world.service.get_booking("fan-1", booking.booking_id)).status == "confirmed"
    assert [action for _, action, _ in await _audit(db)] == ["bookings.reconcile"]


def _tix(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIX_ADMIN_ADDRESS": f"127.0.0.1:{port}", "TIX_OPERATOR": "ops-cli"}
    return subprocess.run(
        [sys.executable, "-m", "tix.cli", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def test_the_tix_commands_drive_the_room_and_name_the_operator(admin, db):
    _, port = admin
    event = await create_event(db)
    event_id = str(event.event_id)
    for args in (("enable", event_id), ("set-rate", event_id, "75"), ("set-max-active", event_id, "500")):
        done = await asyncio.to_thread(_tix, port, "room", *args)
        assert done.returncode == 0, done.stderr
    status = await asyncio.to_thread(_tix, port, "room", "status", event_id)
    assert status.returncode == 0, status.stderr
    assert f"event {event_id}: waiting room admitting" in status.stdout
    assert "rate 75/s configured" in status.stdout
    assert "at most 500 shoppers" in status.stdout
    as_json = await asyncio.to_thread(_tix, port, "room", "status", event_id, "--json")
    assert '"ratePerSecond": 75' in as_json.stdout
    refused = await asyncio.to_thread(_tix, port, "room", "pause", "424242")
    assert refused.returncode == 1
    assert "NOT_FOUND" in refused.stderr
    closed = await asyncio.to_thread(_tix, port, "sale", "close", event_id, "--reason", "storm")
    assert closed.returncode == 0, closed.stderr
    assert f"event {event_id}: ended" in closed.stdout
    assert [(actor, action) for actor, action, _ in await _audit(db)] == [
        ("ops-cli", "waiting_room.enable"), ("ops-cli", "waiting_room.set_rate"),
        ("ops-cli", "waiting_room.set_max_active"), ("ops-cli", "sale.close"),
    ]
