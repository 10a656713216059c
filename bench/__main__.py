"""``python -m bench`` (``make bench``): a flash sale through the booking service, beside baselines measured in the
same run on the same machine, the same sale as REST/JSON through the Envoy edge, and the seed's naive design on the
same load; after each sale the checker proves no seat was sold twice and no fan paid without a ticket. Then the
on-sale read path (``bench/read.py``): event pages, a stadium's seat map and 5,000 live seat watches through Envoy.

    python -m bench                       # both: the sale (below) and the read path
    python -m bench sale                  # the flash sale only: 20,000 seats, 200,000 attempts, 500 clients
    python -m bench read                  # the read path only (--watchers, --event-workers)
    python -m bench booking               # best-available for crowds beside the named-seat sale (bench/booking.py)
    python -m bench search                # search at 1,000,000 events (bench/search.py; catalog built once, kept)
    python -m bench cdc                   # search change-data-capture lag at 100 catalog changes/s (--cdc-rate)
    python -m bench queue                 # the waiting room: joins, 5k/10k/20k watchers, SSE through Envoy
    python -m bench --quick               # a small run (about a minute)
    python -m bench --smoke               # every scenario at toy size, in seconds (run by make test)
    python -m bench --seats 4000 --attempts 40000 --clients 200
    python -m bench --no-envoy            # only the direct gRPC sale

The sale and the naive run each stop at a time budget (--sale-seconds, --naive-seconds) so the whole bench stays
near ten minutes on a small machine; the report then says how many attempts were made. Every store is private to
the run (a fresh database, redis-server and localstripe on free loopback ports) and removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from bench import baselines
from bench.booking import add_arguments as booking_arguments
from bench.booking import run_booking
from bench.catalog import BLOCK, create_sale_event
from bench.cdc import add_arguments as cdc_arguments
from bench.cdc import run_cdc
from bench.checker import SaleCheck, check_sale
from bench.load import LoadResult, LoadSpec, percentile, run_load
from bench.queue import add_arguments as queue_arguments
from bench.queue import run_queue
from bench.read import add_arguments as read_arguments
from bench.read import run_read
from bench.report import Report, _fmt_rate, _ms, _ratio
from bench.search import add_arguments as search_arguments
from bench.search import run_search
from bench.stack import BenchStack, bench_stack


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", choices=("all", "sale", "read", "cdc", "queue", "booking", "search"),
                        default="all", help="which benchmark: the flash sale, the read path, search CDC lag, the "
                        "waiting room, best-available for crowds, or all (default); search (at a million events) runs "
                        "on its own")
    read_arguments(parser)
    search_arguments(parser)
    cdc_arguments(parser)
    queue_arguments(parser)
    booking_arguments(parser)
    parser.add_argument("--seats", type=int, default=20_000, help="seats of the event (a multiple of 40)")
    parser.add_argument("--attempts", type=int, default=200_000, help="reserve attempts in the sale")
    parser.add_argument("--clients", type=int, default=500, help="concurrent clients")
    parser.add_argument("--client-procs", type=int, default=2, help="load-generating processes")
    parser.add_argument("--workers", type=int, default=2, help="booking server processes (TIX_WORKERS)")
    parser.add_argument("--server-db-pool", type=int, default=14,
                        help="database connections per booking server process (a fixed pool: the 12 + 2 overflow of "
                             "earlier runs)")
    parser.add_argument("--naive-connections", type=int, default=32, help="database connections of the naive run")
    parser.add_argument("--sale-seconds", type=float, default=300.0, help="time budget of the flash sale")
    parser.add_argument("--naive-seconds", type=float, default=120.0, help="time budget of the naive run")
    parser.add_argument("--fan-pay-seconds", type=float, default=0.0,
                        help="time each winner takes to pay (the naive design holds its row locks meanwhile)")
    parser.add_argument("--without-request-id", action="store_true",
                        help="reserve without AIP-155 request ids (no idempotency lookups)")
    parser.add_argument("--echo-calls", type=int, default=0, help="health RPCs for the echo baseline (default: auto)")
    parser.add_argument("--envoy", action=argparse.BooleanOptionalAction, default=True,
                        help="after the direct gRPC sale, run it again as REST/JSON through the Envoy edge")
    parser.add_argument("--envoy-attempts", type=int, default=0, help="reserve attempts through Envoy (default: --attempts)")
    parser.add_argument("--envoy-seconds", type=float, default=0.0,
                        help="time budget of the sale through Envoy (default: --sale-seconds)")
    parser.add_argument("--envoy-upstream-streams", type=int, default=0,
                        help="cap streams per Envoy->booking HTTP/2 connection so Envoy opens more of them "
                             "(default 0: the edge's config, one connection per Envoy worker thread)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-sale", action="store_true")
    parser.add_argument("--keep-db", action="store_true", help="keep the bench database for inspection")
    parser.add_argument("--quick", action="store_true", help="2,000 seats, 10,000 attempts, 100 clients")
    parser.add_argument("--smoke", action="store_true",
                        help="every scenario at toy size (80 seats, 400 attempts, 8 clients): proves the bench runs, "
                             "measures nothing")
    args = parser.parse_args(argv)
    args.baseline_scale = 1.0
    if args.quick:
        args.seats, args.attempts, args.clients, args.naive_seconds, args.sale_seconds = 2_000, 10_000, 100, 30.0, 120.0
    if args.smoke:
        args.seats, args.attempts, args.clients, args.client_procs = 80, 400, 8, 1
        args.workers, args.server_db_pool, args.naive_connections = 1, 3, 3
        args.sale_seconds, args.naive_seconds = 20.0, 10.0
        args.echo_calls, args.baseline_scale = 400, 0.02
    if args.quick:
        args.search_events, args.search_seconds, args.search_single = 50_000, 8.0, 30
    if args.smoke:
        args.search_events, args.search_seconds, args.search_single, args.search_clients = 2_000, 2.0, 5, 4
    args.echo_calls = args.echo_calls or min(100_000, max(10_000, args.attempts // 2))
    args.envoy_attempts = args.envoy_attempts or args.attempts
    args.envoy_seconds = args.envoy_seconds or args.sale_seconds
    return args


def _check(stack: BenchStack, event_id: int, title: str) -> SaleCheck:
    started = time.perf_counter()
    result = asyncio.run(check_sale(stack.libpq_url, event_id, stack.stripe_api_base))
    print(f"checker ({title}, {time.perf_counter() - started:.1f}s): {result.summary()}", flush=True)
    return result


def _sale_figures(report: Report, title: str, result: LoadResult, echo: LoadResult | None, cycle_rate: float) -> None:
    decisions = _decisions(result)
    rate = decisions / result.elapsed
    report.add(f"{title}: reserve decisions/s", _fmt_rate(rate),
               f"gRPC health echo {_fmt_rate(echo.rate)}" if echo else "", _ratio(rate, echo.rate) if echo else "")
    confirm_window = max(1e-9, (result.last_confirm or result.finished) - result.started)
    seats_rate = result.seats_confirmed / confirm_window
    report.add(f"{title}: confirmed seats/s", _fmt_rate(seats_rate),
               f"localstripe create+confirm x{BLOCK} seats {_fmt_rate(cycle_rate * BLOCK)}",
               _ratio(seats_rate, cycle_rate * BLOCK))
    p50, p99 = percentile(result.latencies, 50), percentile(result.latencies, 99)
    if echo:
        report.add(f"{title}: reserve latency p50", _ms(p50), f"echo p50 {_ms(percentile(echo.latencies, 50))}",
                   _ratio(p50, percentile(echo.latencies, 50)))
        report.add(f"{title}: reserve latency p99", _ms(p99), f"echo p99 {_ms(percentile(echo.latencies, 99))}",
                   _ratio(p99, percentile(echo.latencies, 99)))
    else:
        report.add(f"{title}: reserve latency p50 / p99", f"{_ms(p50)} / {_ms(p99)}")
    report.add(f"{title}: wall time", f"{result.elapsed:.1f} s ({result.operations:,} attempts)")
    report.add(f"{title}: outcomes", ", ".join(f"{k}={v:,}" for k, v in sorted(result.outcomes.items())))


# Answers that are a decision about the seats (taken, or refused by a rule), as opposed to the service failing.
_DECIDED_CODES = ("FAILED_PRECONDITION", "ABORTED", "ALREADY_EXISTS", "RESOURCE_EXHAUSTED", "PERMISSION_DENIED")


def _decisions(result: LoadResult) -> int:
    """Attempts that got a definite answer: won, or lost because the seats were taken."""
    if result.scenario == "naive":
        return sum(result.outcomes[k] for k in ("confirmed", "lost", "payment failed"))
    return sum(
        count for outcome, count in result.outcomes.items()
        if outcome == "reserve won" or (
            outcome.startswith(tuple(f"reserve {code}" for code in _DECIDED_CODES))
            and not outcome.endswith(":RATE_LIMITED")  # the edge shedding load is not a decision about seats
        )
    )


def _envoy_figures(report: Report, result: LoadResult, direct: LoadResult) -> None:
    """The sale through Envoy beside the direct gRPC sale of the same run."""
    title, base = "envoy sale", "direct gRPC sale"
    rate, direct_rate = _decisions(result) / result.elapsed, _decisions(direct) / direct.elapsed
    report.add(f"{title}: reserve decisions/s", _fmt_rate(rate), f"{base} {_fmt_rate(direct_rate)}",
               _ratio(rate, direct_rate))

    def seats_rate(r: LoadResult) -> float:
        return r.seats_confirmed / max(1e-9, (r.last_confirm or r.finished) - r.started)

    report.add(f"{title}: confirmed seats/s", _fmt_rate(seats_rate(result)),
               f"{base} {_fmt_rate(seats_rate(direct))}", _ratio(seats_rate(result), seats_rate(direct)))
    for q in (50, 99):
        mine, theirs = percentile(result.latencies, q), percentile(direct.latencies, q)
        report.add(f"{title}: reserve latency p{q}", _ms(mine), f"{base} p{q} {_ms(theirs)}", _ratio(mine, theirs))
    report.add(f"{title}: wall time", f"{result.elapsed:.1f} s ({result.operations:,} attempts)")
    report.add(f"{title}: outcomes", ", ".join(f"{k}={v:,}" for k, v in sorted(result.outcomes.items())))


def _envoy_run(args: argparse.Namespace, stack: BenchStack, booking_port: int, event_id: int, report: Report,
               echo: LoadResult, direct: LoadResult) -> SaleCheck | None:
    """Envoy in front of the running booking server: two REST baselines (the edge alone, the edge and a trivial
    service call), then the flash sale on a fresh event as REST/JSON, then the checker."""
    from bench.envoy_edge import RATE_LIMIT_STATS, start_edge

    try:
        edge = start_edge(stack.work_dir, booking_port, upstream_streams=args.envoy_upstream_streams)
    except Exception as error:  # noqa: BLE001 - report and go on with the naive run
        report.notes.append(f"sale through Envoy skipped: the edge did not start ({error})")
        return None
    try:
        rest = {"http_base": edge.base_url, "signing_key_path": str(edge.private_key_path)}
        budget = 3.0 if args.smoke else 15.0 if args.quick else 30.0
        local = run_load(
            LoadSpec("edge_local", args.echo_calls // 2, args.clients, args.client_procs, deadline_seconds=budget,
                     **rest),
            description="Envoy alone (401, no token)",
        )
        report.add(f"Envoy alone: GET /v1/bookings/x without token -> 401 ({args.clients} clients)",
                   _fmt_rate(local.rate), f"gRPC health echo {_fmt_rate(echo.rate)}", _ratio(local.rate, echo.rate))
        rest_echo = run_load(
            LoadSpec("rest_echo", args.echo_calls // 2, args.clients, args.client_procs, deadline_seconds=budget,
                     **rest),
            description="REST echo through Envoy",
        )
        report.add(f"REST echo through Envoy: GET /v1/bookings/not-a-uuid -> 400 ({args.clients} clients)",
                   _fmt_rate(rest_echo.rate), f"gRPC health echo {_fmt_rate(echo.rate)}",
                   _ratio(rest_echo.rate, echo.rate))
        for q in (50, 99):
            mine, theirs = percentile(rest_echo.latencies, q), percentile(echo.latencies, q)
            report.add(f"REST echo through Envoy: latency p{q}", _ms(mine), f"gRPC echo p{q} {_ms(theirs)}",
                       _ratio(mine, theirs))
        for name, run, expected in (("Envoy alone", local, "UNAUTHENTICATED:UNAUTHENTICATED"),
                                    ("REST echo", rest_echo, "INVALID_ARGUMENT:INVALID_ARGUMENT")):
            if set(run.outcomes) != {expected}:
                report.notes.append(f"{name} answers: {dict(run.outcomes)} (expected only {expected})")

        result = run_load(
            LoadSpec("rest_flash_sale", args.envoy_attempts, args.clients, args.client_procs, event_id=event_id,
                     seats=args.seats, stripe_api_base=stack.stripe_api_base, deadline_seconds=args.envoy_seconds,
                     request_ids=not args.without_request_id, fan_pay_seconds=args.fan_pay_seconds, **rest),
            description="flash sale (REST through Envoy)",
        )
        _envoy_figures(report, result, direct)
        if result.operations < args.envoy_attempts:
            report.notes.append(
                f"sale through Envoy stopped at its {args.envoy_seconds:.0f}s budget after {result.operations:,} of "
                f"{args.envoy_attempts:,} attempts"
            )
        rate_limited = sum(edge.stats(*RATE_LIMIT_STATS).get(
            f"{prefix}.http_local_rate_limit.rate_limited", 0) for prefix in RATE_LIMIT_STATS)
        report.notes.append(
            f"Envoy ({os.cpu_count()} worker threads, the edge's own bootstrap from tix_dev.edge) had its rate "
            f"budgets switched off for the bench (EdgeLimits.unlimited()); calls it rate-limited: {rate_limited}. REST clients: aiohttp, HTTP/1.1 "
            f"keep-alive, one connection per client; fans' RS256 tokens signed before the clock started"
        )
        spread = edge.upstream_spread(booking_port)
        if spread:
            report.notes.append(
                f"connections into the booking server after the Envoy sale, by worker process: "
                f"{', '.join(f'pid {pid}: {n}' for pid, n in sorted(spread.items()))} (one of them is Envoy's "
                f"health check)"
                + (f"; Envoy capped at {args.envoy_upstream_streams} streams per upstream connection"
                   if args.envoy_upstream_streams else "")
            )
        time.sleep(1.5)  # let in-flight webhooks settle before checking
        return _check(stack, event_id, "Envoy edge")
    finally:
        edge.stop()


def _sale(args: argparse.Namespace, stack: BenchStack, report: Report, checks: list[SaleCheck]) -> None:
    """The flash sale: baselines, the gRPC sale, the same sale through Envoy, the naive design, the checker."""
    dsn = stack.libpq_url
    sale = asyncio.run(create_sale_event(dsn, args.seats, "Flash Sale (booking service)"))
    naive_event = asyncio.run(create_sale_event(dsn, args.seats, "Flash Sale (naive)"))
    pg_event = asyncio.run(create_sale_event(dsn, args.seats, "Baseline (conditional UPDATE)"))
    envoy_event = asyncio.run(create_sale_event(dsn, args.seats, "Flash Sale (Envoy edge)")) if args.envoy else None
    print(f"catalog ready: events {sale.event_id}, {naive_event.event_id}, {pg_event.event_id}"
          + (f", {envoy_event.event_id}" if envoy_event else ""), flush=True)

    print("baselines:", flush=True)
    redis_ops = int(min(100_000, max(10_000, args.attempts // 2)) * args.baseline_scale)
    single, piped = asyncio.run(baselines.redis_hold_rates(stack.redis_url, args.seats, redis_ops))
    report.add(single.name, _fmt_rate(single.per_second))
    report.add(piped.name, _fmt_rate(piped.per_second), _fmt_rate(single.per_second),
               _ratio(piped.per_second, single.per_second))
    pg_ops = int(min(50_000, max(5_000, args.attempts // 4)) * args.baseline_scale)
    pg = asyncio.run(baselines.postgres_update_rate(dsn, pg_event.event_id, args.seats, pg_ops))
    report.add(pg.name, _fmt_rate(pg.per_second), f"redis unpipelined {_fmt_rate(single.per_second)}",
               _ratio(pg.per_second, single.per_second))
    cycles = asyncio.run(baselines.localstripe_cycle_rate(stack.stripe_api_base, min(3_000, args.seats // BLOCK)))
    report.add(cycles.name, f"{_fmt_rate(cycles.per_second)} payments")

    echo = None
    if args.skip_sale:
        report.notes.append("flash sale skipped (--skip-sale)")
    else:
        try:
            port = stack.start_booking_server(workers=args.workers, db_pool_size=args.server_db_pool)
        except Exception as error:  # noqa: BLE001 - report and go on with the naive run
            report.notes.append(f"flash sale skipped: the booking server did not start ({error})")
            print(stack.booking_log_tail(), file=sys.stderr)
        else:
            target = f"127.0.0.1:{port}"
            echo = run_load(
                LoadSpec("health", args.echo_calls, args.clients, args.client_procs, grpc_target=target),
                description="gRPC health echo",
            )
            report.add(f"gRPC Health/Check echo ({args.clients} clients)", _fmt_rate(echo.rate))
            result = run_load(
                LoadSpec("flash_sale", args.attempts, args.clients, args.client_procs, grpc_target=target,
                         event_id=sale.event_id, seats=args.seats, stripe_api_base=stack.stripe_api_base,
                         deadline_seconds=args.sale_seconds, request_ids=not args.without_request_id,
                         fan_pay_seconds=args.fan_pay_seconds),
                description="flash sale (booking service)",
            )
            _sale_figures(report, "sale", result, echo, cycles.per_second)
            if result.operations < args.attempts:
                report.notes.append(
                    f"flash sale stopped at its {args.sale_seconds:.0f}s budget after {result.operations:,} of "
                    f"{args.attempts:,} attempts"
                )
            time.sleep(1.5)  # let in-flight webhooks and sweeps settle before checking
            checks.append(_check(stack, sale.event_id, "booking service"))
            if envoy_event is not None:
                envoy_check = _envoy_run(args, stack, port, envoy_event.event_id, report, echo, result)
                if envoy_check is not None:
                    checks.append(envoy_check)
            stack.stop_booking_server()

    if not args.skip_naive:
        naive = run_load(
            LoadSpec("naive", args.attempts, args.clients, args.client_procs, event_id=naive_event.event_id,
                     seats=args.seats, stripe_api_base=stack.stripe_api_base, dsn=dsn,
                     db_connections=args.naive_connections, deadline_seconds=args.naive_seconds,
                     fan_pay_seconds=args.fan_pay_seconds),
            description="flash sale (naive FOR UPDATE)",
        )
        _sale_figures(report, "naive", naive, echo, cycles.per_second)
        if naive.operations < args.attempts:
            report.notes.append(
                f"naive run stopped at its {args.naive_seconds:.0f}s budget after {naive.operations:,} of "
                f"{args.attempts:,} attempts"
            )
        checks.append(_check(stack, naive_event.event_id, "naive"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.scenario == "search":
        report = Report()
        started = time.perf_counter()
        run_search(args, report)
        report.print()
        print(f"\ntotal bench time {time.perf_counter() - started:.0f}s")
        return 0
    print(
        f"tix bench: {args.seats:,} seats, {args.attempts:,} reserve attempts, {args.clients} concurrent clients in "
        f"{args.client_procs} processes; booking server with {args.workers} workers; {os.cpu_count()} CPUs",
        flush=True,
    )
    report = Report()
    checks: list[SaleCheck] = []
    failed_read: list[Exception] = []
    started = time.perf_counter()
    with bench_stack(keep_database=args.keep_db) as stack:
        if args.scenario in ("all", "sale"):
            _sale(args, stack, report, checks)
        if args.scenario in ("all", "booking"):
            try:
                run_booking(args, stack, report, checks)
            except Exception as error:  # noqa: BLE001 - report it; the other figures still print
                report.notes.append(f"best-available bench failed: {error!r}")
                print(stack.booking_log_tail(), file=sys.stderr)
                failed_read.append(error)
        if args.scenario in ("all", "read"):
            try:
                run_read(args, stack, report)
            except Exception as error:  # noqa: BLE001 - report it; the sale's figures still print
                report.notes.append(f"read path skipped: {error!r}")
                print(stack.event_log_tail(), file=sys.stderr)
                failed_read.append(error)
        if args.scenario in ("all", "cdc"):
            try:
                run_cdc(args, stack, report)
            except Exception as error:  # noqa: BLE001 - report it; the other figures still print
                report.notes.append(f"cdc skipped: {error!r}")
                failed_read.append(error)
        if args.scenario in ("all", "queue"):
            try:
                run_queue(args, stack, report)
            except Exception as error:  # noqa: BLE001 - report it; the other figures still print
                report.notes.append(f"waiting room skipped: {error!r}")
                failed_read.append(error)

    if args.scenario in ("all", "sale"):
        report.notes.append(
            "Stripe pacing was lifted for the sale (TIX_STRIPE_REQUESTS_PER_SECOND=1000000); at Stripe's test-mode "
            "limit of 25 requests/s, and at least two calls per booking (create at reserve, retrieve at confirm), "
            f"confirmations would be capped near 12 bookings/s = {12.5 * BLOCK:.0f} seats/s per account"
        )
    if args.fan_pay_seconds:
        report.notes.append(f"each winner took {args.fan_pay_seconds:g}s to pay (--fan-pay-seconds)")
    report.print()
    print(f"\ntotal bench time {time.perf_counter() - started:.0f}s")
    failed = [c for c in checks if not c.ok]
    for check in failed:
        print(check.summary(), file=sys.stderr)
    return 1 if failed or failed_read else 0


if __name__ == "__main__":
    sys.exit(main())
