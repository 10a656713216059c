"""A fan's path through booking on the real stores: hold, pay, confirm; cancel; expiry; the rules on the way."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from booking_svc.domain import BestAvailable, SeatRequest
from booking_svc.holds import hold_key
from booking_svc.sweeper import sweep_once
from tests.factories import create_event
from tests.integration.booking_harness import (
    age_booking,
    assert_never_sold_twice,
    booking_world,
    named,
    pay_as_fan,
    ticket_states,
)
from tix.admission import issue_admission_token
from tix.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

# The Stripe SDK's HTTPXClient posts form bodies with httpx's deprecated `data=bytes`; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
async def world(db, redis, redis_url, localstripe_url):
    async with booking_world(db, redis_url, localstripe_url) as built:
        yield built


async def test_reserving_named_seats_holds_them_and_returns_a_payable_booking(world, db, redis):
    event = await create_event(db)
    seats = event.seat_ids[:2]
    booking = await world.service.reserve_seats(named("fan-1", event.event_id, *seats))

    assert booking.status == "reserved"
    assert booking.seat_ids == tuple(seats)
    assert booking.total_minor == sum(booking.seat_prices) == 2 * 12500
    assert booking.payment_intent_id.startswith("pi_")
    assert booking.client_secret.startswith(booking.payment_intent_id)
    assert timedelta(seconds=590) < booking.expires_at - datetime.now(UTC) <= timedelta(seconds=600)
    assert booking.fence > 0
    assert [s.row_label for s in booking.seats] == ["A", "A"]
    states = await ticket_states(db, event.event_id)
    assert all(states[s] == ("reserved", str(booking.booking_id)) for s in seats)
    assert await redis.get(hold_key(event.event_id, seats[0])) == str(booking.booking_id)


async def test_paying_then_confirming_books_the_seats_and_marks_them_sold_in_redis(world, db, redis, localstripe_url):
    event = await create_event(db)
    booking = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))

    with pytest.raises(FailedPrecondition) as early:
        await world.service.confirm_booking("fan-1", booking.booking_id)
    assert early.value.reason == "PAYMENT_INCOMPLETE"

    await pay_as_fan(localstripe_url, booking.payment_intent_id)
    confirmed = await world.service.confirm_booking("fan-1", booking.booking_id)
    assert confirmed.status == "confirmed"
    assert confirmed.payment_status == "succeeded"
    assert confirmed.confirmed_at is not None
    assert (await ticket_states(db, event.event_id))[event.seat_ids[0]] == ("booked", str(booking.booking_id))
    key = hold_key(event.event_id, event.seat_ids[0])
    assert await redis.get(key) == f"sold:{booking.booking_id}"
    assert await redis.pttl(key) > 24 * 3600 * 1000  # until the event starts, 30 days out

    again = await world.service.confirm_booking("fan-1", booking.booking_id)
    assert again.status == "confirmed"
    assert again.confirmed_at == confirmed.confirmed_at
    with pytest.raises(FailedPrecondition) as paid:
        await world.service.cancel_booking("fan-1", booking.booking_id)
    assert paid.value.reason == "BOOKING_CONFIRMED"
    await assert_never_sold_twice(db, event.event_id)


async def test_a_taken_seat_is_refused_with_seat_unavailable_naming_it(world, db):
    event = await create_event(db)
    await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    with pytest.raises(Aborted) as lost:
        await world.service.reserve_seats(named("fan-2", event.event_id, event.seat_ids[1], event.seat_ids[0]))
    assert lost.value.reason == "SEAT_UNAVAILABLE"
    assert lost.value.metadata["seat_ids"] == event.seat_ids[0]
    # All or nothing: the free seat of the losing request is not held either.
    assert (await ticket_states(db, event.event_id))[event.seat_ids[1]] == ("available", None)


async def test_cancelling_frees_the_seats_for_the_next_fan(world, db, redis, localstripe_url):
    event = await create_event(db)
    first = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    cancelled = await world.service.cancel_booking("fan-1", first.booking_id)
    assert cancelled.status == "cancelled"
    assert cancelled.payment_status == "canceled"
    assert await redis.get(hold_key(event.event_id, event.seat_ids[0])) is None

    second = await world.service.reserve_seats(named("fan-2", event.event_id, event.seat_ids[0]))
    assert second.status == "reserved"
    assert (await world.service.cancel_booking("fan-1", first.booking_id)).status == "cancelled"  # idempotent
    await assert_never_sold_twice(db, event.event_id)


async def test_the_sweeper_expires_overdue_holds_and_frees_their_seats(world, db, redis, localstripe_url):
    event = await create_event(db)
    booking = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    await age_booking(db, booking.booking_id)
    await redis.flushdb()  # the Redis TTL would have run out too

    assert await sweep_once(world.service) == (1, 0, 0)
    expired = await world.service.get_booking("fan-1", booking.booking_id)
    assert expired.status == "expired"
    assert expired.payment_status == "canceled"
    assert (await ticket_states(db, event.event_id))[event.seat_ids[0]] == ("available", None)

    with pytest.raises(FailedPrecondition) as late:
        await world.service.confirm_booking("fan-1", booking.booking_id)
    assert late.value.reason == "HOLD_EXPIRED"
    again = await world.service.reserve_seats(named("fan-2", event.event_id, event.seat_ids[0]))
    assert again.status == "reserved"


async def test_an_expired_hold_counts_as_available_before_the_sweeper_runs(world, db, redis):
    event = await create_event(db)
    stale = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    await age_booking(db, stale.booking_id)
    await redis.flushdb()
    fresh = await world.service.reserve_seats(named("fan-2", event.event_id, event.seat_ids[0]))
    assert fresh.fence > stale.fence
    assert (await ticket_states(db, event.event_id))[event.seat_ids[0]] == ("reserved", str(fresh.booking_id))
    # The stale booking's late cancel changes nothing of the new holder's.
    await world.service.cancel_booking("fan-1", stale.booking_id)
    assert (await ticket_states(db, event.event_id))[event.seat_ids[0]] == ("reserved", str(fresh.booking_id))


async def test_other_fans_cannot_see_confirm_or_cancel_a_booking(world, db):
    event = await create_event(db)
    booking = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    for call in (world.service.get_booking, world.service.confirm_booking, world.service.cancel_booking):
        with pytest.raises(NotFound) as hidden:
            await call("fan-2", booking.booking_id)
        assert hidden.value.reason == "BOOKING_NOT_FOUND"
    with pytest.raises(NotFound):
        await world.service.get_booking("fan-1", uuid.uuid4())
    assert (await world.service.get_booking("fan-1", booking.booking_id)).status == "reserved"


async def test_the_same_request_id_returns_the_same_booking(world, db):
    event = await create_event(db)
    first = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0], request_id="r-1"))
    again = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0], request_id="r-1"))
    assert again.booking_id == first.booking_id
    assert again.payment_intent_id == first.payment_intent_id
    other_fan = await world.service.reserve_seats(named("fan-2", event.event_id, event.seat_ids[1], request_id="r-1"))
    assert other_fan.booking_id != first.booking_id


async def test_retrying_an_ended_booking_replays_it_and_leaves_no_hold_behind(world, db, redis):
    event = await create_event(db)
    first = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0], request_id="r-9"))
    await world.service.cancel_booking("fan-1", first.booking_id)
    again = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0], request_id="r-9"))
    assert (again.booking_id, again.status) == (first.booking_id, "cancelled")
    assert await redis.get(hold_key(event.event_id, event.seat_ids[0])) is None
    assert (await world.service.reserve_seats(named("fan-2", event.event_id, event.seat_ids[0]))).status == "reserved"


async def test_concurrent_retries_with_one_request_id_make_one_booking(world, db):
    event = await create_event(db)
    request = named("fan-1", event.event_id, *event.seat_ids[:3], request_id="retry-storm")
    results = await asyncio.gather(*(world.service.reserve_seats(request) for _ in range(20)))
    assert len({r.booking_id for r in results}) == 1
    assert len({r.payment_intent_id for r in results}) == 1
    owner = await assert_never_sold_twice(db, event.event_id)
    assert set(owner) == set(event.seat_ids[:3])


async def test_best_available_holds_adjacent_seats_without_stranding_one(world, db):
    event = await create_event(db, sections=1, rows=2, seats_per_row=6, layout_id="best-6x2")
    # Row A: seats 1..6; fan-0 takes A-3 so the free runs in row A are 1-2 and 4-6.
    await world.service.reserve_seats(named("fan-0", event.event_id, "S1-A-3"))
    booking = await world.service.reserve_seats(
        SeatRequest(user_id="fan-1", event_id=event.event_id, best_available=BestAvailable(2))
    )
    # 1-2 (whole run) and 4-5/5-6 would strand 6/4; 1-2 strands nothing.
    assert booking.seat_ids == ("S1-A-1", "S1-A-2")
    quad = await world.service.reserve_seats(
        SeatRequest(user_id="fan-2", event_id=event.event_id, best_available=BestAvailable(4, section_id="S1"))
    )
    rows = {s.row_label for s in quad.seats}
    numbers = sorted(s.number for s in quad.seats)
    assert len(rows) == 1
    assert numbers == list(range(numbers[0], numbers[0] + 4))
    with pytest.raises(Aborted) as none_left:
        await world.service.reserve_seats(
            SeatRequest(user_id="fan-3", event_id=event.event_id, best_available=BestAvailable(4))
        )
    assert none_left.value.reason == "SEAT_UNAVAILABLE"


async def test_best_available_moves_to_the_next_block_when_a_racer_took_the_best(world, db, redis):
    event = await create_event(db, sections=1, rows=3, seats_per_row=4, layout_id="best-4x3")
    # A racer holds the best block in Redis only (its database write has not landed yet).
    await redis.set(hold_key(event.event_id, "S1-A-2"), "racer", px=60_000)
    booking = await world.service.reserve_seats(
        SeatRequest(user_id="fan-1", event_id=event.event_id, best_available=BestAvailable(2))
    )
    assert "S1-A-2" not in booking.seat_ids
    assert len({s.row_label for s in booking.seats}) == 1


async def test_sale_rules_are_enforced(world, db):
    not_open = await create_event(db, on_sale=False)
    with pytest.raises(FailedPrecondition) as early:
        await world.service.reserve_seats(named("fan-1", not_open.event_id, not_open.seat_ids[0]))
    assert early.value.reason == "SALE_NOT_OPEN"

    with pytest.raises(NotFound) as missing:
        await world.service.reserve_seats(named("fan-1", 999_999, "S1-A-1"))
    assert missing.value.reason == "EVENT_NOT_FOUND"

    event = await create_event(db, max_seats_per_user=3)
    with pytest.raises(NotFound) as unknown:
        await world.service.reserve_seats(named("fan-1", event.event_id, "S1-A-1", "Z9-Q-99"))
    assert (unknown.value.reason, unknown.value.metadata["seat_ids"]) == ("SEAT_NOT_FOUND", "Z9-Q-99")

    with pytest.raises(InvalidArgument):
        await world.service.reserve_seats(named("fan-1", event.event_id, "S1-A-1", "S1-A-1"))
    with pytest.raises(InvalidArgument):
        await world.service.reserve_seats(named("fan-1", event.event_id))
    with pytest.raises(InvalidArgument):
        await world.service.reserve_seats(
            SeatRequest("fan-1", event.event_id, ("S1-A-1",), best_available=BestAvailable(1))
        )

    await world.service.reserve_seats(named("fan-1", event.event_id, *event.seat_ids[:2]))
    with pytest.raises(FailedPrecondition) as limit:
        await world.service.reserve_seats(named("fan-1", event.event_id, *event.seat_ids[2:4]))
    assert limit.value.reason == "SEAT_LIMIT_EXCEEDED"
    with pytest.raises(FailedPrecondition) as too_many:
        await world.service.reserve_seats(named("fan-9", event.event_id, *event.seat_ids[10:14]))
    assert too_many.value.reason == "SEAT_LIMIT_EXCEEDED"
    # The refused request left its seats free.
    assert (await ticket_states(db, event.event_id))[event.seat_ids[2]] == ("available", None)


async def test_one_fan_racing_themselves_cannot_pass_the_seat_limit(world, db):
    event = await create_event(db, max_seats_per_user=4)
    requests = [named("greedy", event.event_id, *event.seat_ids[i * 2 : i * 2 + 2]) for i in range(6)]
    results = await asyncio.gather(*(world.service.reserve_seats(r) for r in requests), return_exceptions=True)
    won = [r for r in results if not isinstance(r, Exception)]
    assert len(won) == 2
    assert all(isinstance(r, FailedPrecondition) and r.reason == "SEAT_LIMIT_EXCEEDED"
               for r in results if isinstance(r, Exception))


async def test_a_waiting_room_event_needs_an_admission_token_for_this_fan(world, db):
    event = await create_event(db, queue_enabled=True)
    with pytest.raises(PermissionDenied) as refused:
        await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    assert refused.value.reason == "ADMISSION_REQUIRED"
    secret = world.settings.admission_secret
    someone_elses = issue_admission_token(secret, user_id="fan-2", event_id=event.event_id, ticket_id="t",
                                          ttl_seconds=60)
    with pytest.raises(PermissionDenied):
        await world.service.reserve_seats(
            SeatRequest("fan-1", event.event_id, (event.seat_ids[0],), admission_token=someone_elses)
        )
    token = issue_admission_token(secret, user_id="fan-1", event_id=event.event_id, ticket_id="t", ttl_seconds=60)
    booking = await world.service.reserve_seats(
        SeatRequest("fan-1", event.event_id, (event.seat_ids[0],), admission_token=token)
    )
    assert booking.status == "reserved"


async def test_an_admission_token_buys_one_booking_and_a_retry_of_that_purchase_is_not_a_second_use(
    world, db, redis, localstripe_url
):
    event = await create_event(db, queue_enabled=True)
    token = issue_admission_token(world.settings.admission_secret, user_id="fan-1", event_id=event.event_id,
                                  ticket_id="ticket-1", ttl_seconds=60)
    first = await world.service.reserve_seats(
        SeatRequest("fan-1", event.event_id, (event.seat_ids[0],), admission_token=token, request_id="buy-1")
    )
    replay = await world.service.reserve_seats(
        SeatRequest("fan-1", event.event_id, (event.seat_ids[0],), admission_token=token, request_id="buy-1")
    )
    assert replay.booking_id == first.booking_id
    # Five more purchases with the same admission, at once: every one is refused, none holds a seat.
    attempts = await asyncio.gather(
        *(
            world.service.reserve_seats(
                SeatRequest("fan-1", event.event_id, (event.seat_ids[i],), admission_token=token,
                            request_id=f"again-{i}")
            )
            for i in range(1, 6)
        ),
        return_exceptions=True,
    )
    assert all(isinstance(a, PermissionDenied) and a.reason == "ADMISSION_USED" for a in attempts), attempts
    assert not await redis.exists(*(hold_key(event.event_id, s) for s in event.seat_ids[1:6]))
    async with db.connect() as conn:
        spent = await conn.scalar(
            text("SELECT count(*) FROM bookings WHERE event_id = :e AND admission_ticket = 'ticket-1'"),
            {"e": event.event_id},
        )
    assert spent == 1


async def test_fans_late_for_a_sold_seat_lose_in_redis_and_a_retry_of_the_purchase_still_replays(
    world, db, redis, localstripe_url
):
    """After a sale, the stampede's stragglers must not reach PostgreSQL: a sold seat's key stays taken."""
    event = await create_event(db)
    seat = event.seat_ids[0]
    bought = await world.service.reserve_seats(named("fan-1", event.event_id, seat, request_id="buy-1"))
    await pay_as_fan(localstripe_url, bought.payment_intent_id)
    await world.service.confirm_booking("fan-1", bought.booking_id)

    lost_before = _holds_counter("lost")
    refused_before = _bookings_counter("refused_by_database")
    for fan in range(20):
        with pytest.raises(Aborted) as late:
            await world.service.reserve_seats(named(f"late-{fan}", event.event_id, seat))
        assert late.value.reason == "SEAT_UNAVAILABLE"
    assert _holds_counter("lost") - lost_before == 20
    assert _bookings_counter("refused_by_database") == refused_before

    replay = await world.service.reserve_seats(named("fan-1", event.event_id, seat, request_id="buy-1"))
    assert replay.booking_id == bought.booking_id
    assert replay.status == "confirmed"
    assert await redis.get(hold_key(event.event_id, seat)) == f"sold:{bought.booking_id}"

    # Redis forgetting the sale costs a database round trip, never a second sale.
    await redis.flushall()
    with pytest.raises(Aborted):
        await world.service.reserve_seats(named("late-again", event.event_id, seat))
    assert _bookings_counter("refused_by_database") == refused_before + 1
    await assert_never_sold_twice(db, event.event_id)


def _holds_counter(outcome: str) -> float:
    return REGISTRY.get_sample_value("tix_booking_holds_total", {"outcome": outcome}) or 0.0


def _bookings_counter(outcome: str) -> float:
    return REGISTRY.get_sample_value("tix_booking_bookings_total", {"outcome": outcome}) or 0.0
