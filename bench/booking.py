"""``python -m bench booking``: best-available for crowds (booking_svc.allocation), beside the named-seat sale and
the gRPC echo measured in the same run on the same booking server.

(a) A 20,000-seat event; 500 clients, each call a new fan asking best-available for 1-8 seats (first 2-8 until no
    pair is left anywhere: the seats left then are the stranded singles; then 1 until sold out). Decisions/s beside
    the named-seat flash sale (random 4-seat blocks) and the echo; answers by code; sold-out time; checker.
(b) The same on a fresh event with client deadlines of 200 ms-2 s (fans who give up); then leaked holds: hold keys
    in Redis that no reserved booking of PostgreSQL stands behind (0 expected), and the checker.
(c) A cold 70,000-seat stadium: 100 concurrent best-available fans while another fan polls ``GetBooking`` of their
    own booking: that bystander's p50/p99, beside the same polling with nothing else going on.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time
from collections import Counter

import psycopg
import redis

from bench.catalog import create_sale_event
from bench.checker import SaleCheck, check_sale
from bench.load import LoadResult, LoadSpec, percentile, run_load
from bench.report import Report, _fmt_rate, _ms, _ratio
from bench.stack import BenchStack


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ba-seats", type=int, default=20_000, help="best-available: seats of the event (x40)")
    parser.add_argument("--stadium-seats", type=int, default=70_000, help="best-available: the cold stadium (x40)")
    parser.add_argument("--stadium-fans", type=int, default=100, help="best-available: fans on the cold stadium")
    parser.add_argument("--pay-at-reserve", action="store_true",
                        help="best-available and its named-seat baseline: ReserveSeats makes the PaymentIntent (the "
                             "old contract) instead of holds checked out with CheckoutBooking by the winners")


def _sizes(args: argparse.Namespace) -> tuple[int, int, int]:
    if args.smoke:
        return 400, 2_000, 8
    if args.quick:
        return 4_000, 20_000, 100
    return args.ba_seats, args.stadium_seats, args.stadium_fans


def _decisions(result: LoadResult) -> int:
    """Answers that decided something about seats (won, or none left of that size); shed load and deadlines
    are not decisions."""
    return sum(
        count for outcome, count in result.outcomes.items()
        if outcome == "reserve won" or outcome.startswith("reserve ABORTED")
    )


def _answers(result: LoadResult) -> str:
    reserve = Counter({k.removeprefix("reserve "): v for k, v in result.outcomes.items() if k.startswith("reserve")})
    return ", ".join(f"{k}={v:,}" for k, v in sorted(reserve.items()))


def _free_seats(dsn: str, event_id: int) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM tickets WHERE event_id = %s AND status = 'available'", (event_id,)
        ).fetchone()
    return int(row[0]) if row else 0


def leaked_holds(dsn: str, redis_url: str, event_id: int) -> tuple[int, int]:
    """(hold keys of the event valued with a booking id, those whose booking is not a reserved booking holding that
    seat in PostgreSQL). Sold markers are not counted."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = list(client.scan_iter(match=f"tix:hold:{{{event_id}}}:*", count=1000))
        values = client.mget(keys) if keys else []
    finally:
        client.close()
    holds = {k.partition("}:")[2]: v for k, v in zip(keys, values, strict=True) if v and not v.startswith("sold:")}
    with psycopg.connect(dsn) as conn:
        live = {
            (seat, str(booking))
            for booking, seats in conn.execute(
                "SELECT booking_id, seat_ids FROM bookings WHERE event_id = %s AND status = 'reserved'", (event_id,)
            ).fetchall()
            for seat in seats
        }
    return len(holds), sum(1 for seat, booking in holds.items() if (seat, booking) not in live)


def _sell_out(args: argparse.Namespace, stack: BenchStack, target: str, event_id: int, seats: int,
              call_deadline: tuple[float, float], title: str, seed: int) -> tuple[LoadResult, LoadResult, int]:
    """Blocks of 2-8 until no pair is left, then singles until sold out. Returns both phases and the seats left
    after the first (the stranded singles)."""
    common = {"grpc_target": target, "event_id": event_id, "seats": seats,
              "stripe_api_base": stack.stripe_api_base, "call_deadline": call_deadline,
              "defer_payment": not args.pay_at_reserve}
    budget = 60.0 if args.smoke else 120.0 if args.quick else 300.0
    blocks = run_load(
        LoadSpec("best_available", 10 * seats, args.clients, args.client_procs, quantities=(2, 8),
                 deadline_seconds=budget, seed=seed, **common),
        description=f"{title}: blocks of 2-8",
    )
    stranded = _free_seats(stack.libpq_url, event_id)
    singles = run_load(
        LoadSpec("best_available", 10 * seats, min(args.clients, max(1, stranded)), args.client_procs,
                 quantities=(1, 1), deadline_seconds=budget, seed=seed + 1, **common),
        description=f"{title}: singles",
    )
    return blocks, singles, stranded


def _merged(*results: LoadResult) -> LoadResult:
    merged = LoadResult(results[0].scenario)
    for result in results:
        merged.merge(result)
    return merged


def _bystander(target: str, user_id: str, booking_id: str, stop, latencies) -> None:  # type: ignore[no-untyped-def]
    """Another fan polling their own booking every 10 ms (its own process), until ``stop`` is set."""
    import grpc
    import uvloop

    from tixpb.v1 import booking_pb2, booking_pb2_grpc

    async def poll() -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = booking_pb2_grpc.BookingServiceStub(channel)
            request = booking_pb2.GetBookingRequest(booking_id=booking_id)
            metadata = (("x-user-id", user_id),)
            while not stop.is_set():
                started = time.perf_counter()
                await stub.GetBooking(request, metadata=metadata, timeout=30)
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.01)

    uvloop.run(poll())


def _poll_bystander(target: str, user_id: str, booking_id: str, during) -> list[float]:  # type: ignore[no-untyped-def]
    context = mp.get_context("spawn")
    manager = context.Manager()
    stop, latencies = manager.Event(), manager.list()
    process = context.Process(target=_bystander, args=(target, user_id, booking_id, stop, latencies), daemon=True)
    process.start()
    try:
        time.sleep(1.0)
        latencies[:] = []
        during()
    finally:
        stop.set()
        process.join(timeout=30)
    out = list(latencies)
    manager.shutdown()
    return out


def _check(stack: BenchStack, event_id: int, title: str) -> SaleCheck:
    result = asyncio.run(check_sale(stack.libpq_url, event_id, stack.stripe_api_base))
    print(f"checker ({title}): {result.summary()}", flush=True)
    return result


def run_booking(args: argparse.Namespace, stack: BenchStack, report: Report, checks: list[SaleCheck]) -> None:
    seats, stadium_seats, stadium_fans = _sizes(args)
    dsn = stack.libpq_url
    named_event = asyncio.run(create_sale_event(dsn, seats, "Named-seat sale (baseline)"))
    ba_event = asyncio.run(create_sale_event(dsn, seats, "Best-available sale"))
    quitters_event = asyncio.run(create_sale_event(dsn, seats, "Best-available, fans who give up"))
    stadium = asyncio.run(create_sale_event(dsn, stadium_seats, "Cold stadium"))
    bystander_event = asyncio.run(create_sale_event(dsn, 400, "The bystander's event"))
    port = stack.start_booking_server(workers=args.workers, db_pool_size=args.server_db_pool)
    target = f"127.0.0.1:{port}"
    try:
        echo = run_load(LoadSpec("health", args.echo_calls, args.clients, args.client_procs, grpc_target=target),
                        description="gRPC health echo")
        report.add(f"gRPC Health/Check echo ({args.clients} clients)", _fmt_rate(echo.rate))
        named = run_load(
            LoadSpec("flash_sale", 10 * seats, args.clients, args.client_procs, grpc_target=target,
                     event_id=named_event.event_id, seats=seats, stripe_api_base=stack.stripe_api_base,
                     defer_payment=not args.pay_at_reserve, deadline_seconds=60.0 if args.smoke else 120.0 if args.quick else 300.0),
            description="named-seat sale (baseline)",
        )
        named_rate = _decisions(named) / named.elapsed
        report.add(f"named-seat sale ({seats:,} seats, 4-seat blocks): decisions/s", _fmt_rate(named_rate),
                   f"echo {_fmt_rate(echo.rate)}", _ratio(named_rate, echo.rate))

        # (a) best-available until sold out.
        blocks, singles, stranded = _sell_out(args, stack, target, ba_event.event_id, seats, (0.0, 0.0),
                                              "best-available", seed=10)
        sale = _merged(blocks, singles)
        rate = _decisions(sale) / sale.elapsed
        report.add("(a) best-available 1-8 seats: decisions/s", _fmt_rate(rate),
                   f"named-seat sale {_fmt_rate(named_rate)}", _ratio(rate, named_rate))
        won_rate, named_won_rate = sale.outcomes["reserve won"] / sale.elapsed, named.outcomes["reserve won"] / named.elapsed
        report.add("(a) best-available: bookings won/s (every decision a win)", _fmt_rate(won_rate),
                   f"named-seat sale {_fmt_rate(named_won_rate)} won/s", _ratio(won_rate, named_won_rate))
        report.add("(a) best-available: decisions/s vs echo", _fmt_rate(rate), f"echo {_fmt_rate(echo.rate)}",
                   _ratio(rate, echo.rate))
        for q in (50, 99):
            report.add(f"(a) best-available: reserve latency p{q}", _ms(percentile(sale.latencies, q)),
                       f"named-seat p{q} {_ms(percentile(named.latencies, q))}",
                       _ratio(percentile(sale.latencies, q), percentile(named.latencies, q)))
        report.add("(a) best-available: sold out after", f"{sale.elapsed:.1f} s",
                   f"{sale.outcomes['reserve won']:,} bookings, {sale.seats_confirmed:,} seats paid and confirmed")
        report.add("(a) seats left stranded as singles when no pair was left", f"{stranded:,} of {seats:,}",
                   "", f"{stranded / seats:.2%}")
        report.add("(a) answers", _answers(sale))
        report.add("(a) named-seat sale answers", _answers(named))
        time.sleep(1.5)
        checks.append(_check(stack, ba_event.event_id, "best-available"))
        held, leaked = leaked_holds(dsn, stack.redis_url, ba_event.event_id)
        report.add("(a) Redis holds without a reserved booking after the sale", f"{leaked}", f"{held} holds")

        # (b) fans who give up.
        blocks, singles, _ = _sell_out(args, stack, target, quitters_event.event_id, seats, (0.2, 2.0),
                                       "best-available, deadlines 0.2-2 s", seed=20)
        quitters = _merged(blocks, singles)
        given_up = sum(v for k, v in quitters.outcomes.items() if "DEADLINE_EXCEEDED" in k or "CANCELLED" in k)
        report.add("(b) deadlines 0.2-2 s: decisions/s", _fmt_rate(_decisions(quitters) / quitters.elapsed),
                   f"(a) {_fmt_rate(rate)}", _ratio(_decisions(quitters) / quitters.elapsed, rate))
        report.add("(b) answers", _answers(quitters))
        report.add("(b) calls whose fan gave up (deadline)", f"{given_up:,}")
        time.sleep(3.0)  # give-backs of abandoned reservations settle
        checks.append(_check(stack, quitters_event.event_id, "best-available, deadlines"))
        held, leaked = leaked_holds(dsn, stack.redis_url, quitters_event.event_id)
        report.add("(b) leaked holds (Redis holds no reserved booking stands behind)", f"{leaked}", f"{held} holds")

        # (c) a cold stadium and a bystander.
        import grpc

        from tixpb.v1 import booking_pb2, booking_pb2_grpc

        async def bystander_booking() -> str:
            async with grpc.aio.insecure_channel(target) as channel:
                stub = booking_pb2_grpc.BookingServiceStub(channel)
                booking = await stub.ReserveSeats(
                    booking_pb2.ReserveSeatsRequest(event_id=str(bystander_event.event_id),
                                                    best_available=booking_pb2.BestAvailable(quantity=2)),
                    metadata=(("x-user-id", "bystander"),), timeout=60,
                )
                return booking.booking_id

        booking_id = asyncio.run(bystander_booking())
        quiet = _poll_bystander(target, "bystander", booking_id, lambda: time.sleep(3.0))
        crowd: list[LoadResult] = []
        during = _poll_bystander(target, "bystander", booking_id, lambda: crowd.append(run_load(
            LoadSpec("best_available", stadium_fans, stadium_fans, 1, grpc_target=target, event_id=stadium.event_id,
                     seats=stadium_seats, stripe_api_base=stack.stripe_api_base, quantities=(1, 8), seed=30,
                     defer_payment=not args.pay_at_reserve),
            description=f"(c) {stadium_fans} fans on a cold {stadium_seats:,}-seat stadium",
        )))
        for q in (50, 99):
            report.add(f"(c) bystander GetBooking p{q} during {stadium_fans} fans on a cold "
                       f"{stadium_seats:,}-seat stadium", _ms(percentile(during, q)),
                       f"quiet p{q} {_ms(percentile(quiet, q))}", _ratio(percentile(during, q), percentile(quiet, q)))
        report.add("(c) stadium fans: answers", _answers(crowd[0]))
        report.add("(c) stadium fans: reserve p50 / p99 (the first ones wait for the load)",
                   f"{_ms(percentile(crowd[0].latencies, 50))} / {_ms(percentile(crowd[0].latencies, 99))}")
    finally:
        stack.stop_booking_server()
    report.notes.append(
        "best-available: each call is a new fan; winners pay and confirm in the background (16 at once per load "
        "process); a quantity answered SEAT_UNAVAILABLE is not asked again by that load process; "
        + ("ReserveSeats makes the PaymentIntent (--pay-at-reserve)" if args.pay_at_reserve else
           "reservations are holds (defer_payment) and winners call CheckoutBooking before paying, in both the "
           "best-available and the named-seat sale (the same work per decision)")
    )
