"""The load generator: client processes (spawned, each with its own event loop and gRPC channels) driving one
scenario with a fixed number of concurrent clients, reporting latencies and outcomes back to the parent, which shows
progress with tqdm.

Scenarios:
- ``health``: ``grpc.health.v1.Health/Check`` on the booking server, the floor any RPC pays (the echo baseline);
- ``flash_sale``: fans reserving 4-seat blocks through ``BookingService.ReserveSeats``; each winner pays in
  localstripe as Stripe.js would (attach a test card, confirm) and calls ``ConfirmBooking``;
- ``naive``: the same fans against ``bench.naive`` (one long PostgreSQL transaction with ``SELECT ... FOR UPDATE``);
- ``rest_flash_sale``: the flash sale as a browser or app makes it, REST/JSON through the Envoy edge
  (``POST /v1/bookings:reserve``, ``POST /v1/bookings/{id}:confirm``) with a signed-in fan's bearer token;
- ``rest_echo``: ``GET /v1/bookings/not-a-uuid`` through Envoy (JWT checked, transcoded, refused by the booking
  service with INVALID_ARGUMENT before any store is touched): the floor any REST call pays;
- ``edge_local``: the same call without a token, refused by Envoy's JWT filter itself (401): the edge alone.
"""

from __future__ import annotations

import asyncio
import collections
import json
import multiprocessing as mp
import queue as queue_module
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.progress import progress_options
from tix.settings import DEVELOPMENT_STRIPE_API_KEY

CHANNELS_PER_PROCESS = 4  # so SO_REUSEPORT spreads each client process over every server worker


@dataclass(frozen=True)
class LoadSpec:
    scenario: str
    total: int
    concurrency: int
    procs: int
    grpc_target: str = ""
    event_id: int = 0
    seats: int = 0
    stripe_api_base: str = ""
    dsn: str = ""
    db_connections: int = 0
    deadline_seconds: float = 0.0  # 0: run every operation
    request_ids: bool = True  # send AIP-155 request ids with reserve/confirm, as a retrying client would
    fan_pay_seconds: float = 0.0  # how long a winner takes to type in a card before paying
    http_base: str = ""  # the Envoy edge, for the REST scenarios
    signing_key_path: str = ""  # the dev RSA key the edge's JWKS trusts, to sign fans' tokens
    seed: int = 1
    # Best-available scenarios: quantities asked (min, max), per-call deadline range in seconds (0: 60 s).
    quantities: tuple[int, int] = (1, 8)
    call_deadline: tuple[float, float] = (0.0, 0.0)
    # gRPC sale scenarios: hold only (ReserveSeats defer_payment); winners get the PaymentIntent from
    # CheckoutBooking when they go to pay, as the web app does.
    defer_payment: bool = False


@dataclass
class LoadResult:
    scenario: str
    started: float = 0.0  # wall clock (time.time) of the first operation, over all processes
    finished: float = 0.0
    operations: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, of the scenario's primary call
    outcomes: Counter = field(default_factory=Counter)
    seats_confirmed: int = 0
    confirm_latencies: list[float] = field(default_factory=list)  # pay + confirm, for winners
    first_confirm: float = 0.0
    last_confirm: float = 0.0

    @property
    def elapsed(self) -> float:
        return max(1e-9, self.finished - self.started)

    @property
    def rate(self) -> float:
        return self.operations / self.elapsed

    def confirmed(self, seats: int, paying_since: float | None = None) -> None:
        """A booking confirmed now: its seats, and (``paying_since``, perf_counter) the time from paying."""
        now = time.time()
        self.outcomes["confirmed"] += 1
        self.seats_confirmed += seats
        if paying_since is not None:
            self.confirm_latencies.append(time.perf_counter() - paying_since)
        self.first_confirm = min(self.first_confirm or now, now)
        self.last_confirm = now

    def merge(self, other: LoadResult) -> None:
        self.started = min(self.started or other.started, other.started or self.started)
        self.finished = max(self.finished, other.finished)
        self.operations += other.operations
        self.latencies.extend(other.latencies)
        self.outcomes.update(other.outcomes)
        self.seats_confirmed += other.seats_confirmed
        self.confirm_latencies.extend(other.confirm_latencies)
        if other.first_confirm:
            self.first_confirm = min(self.first_confirm or other.first_confirm, other.first_confirm)
        self.last_confirm = max(self.last_confirm, other.last_confirm)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def run_load(spec: LoadSpec, *, description: str) -> LoadResult:
    """Run ``spec`` in ``spec.procs`` spawned processes; blocks until they finish."""
    context = mp.get_context("spawn")
    done = context.Value("q", 0)
    ready = context.Barrier(spec.procs + 1)
    results: mp.Queue = context.Queue()
    processes = [
        context.Process(target=_child_main, args=(spec, index, done, ready, results), daemon=True)
        for index in range(spec.procs)
    ]
    for process in processes:
        process.start()
    merged = LoadResult(spec.scenario)
    try:
        ready.wait(timeout=120)  # every child connected: start the clock together
        collected = 0
        with tqdm(
            total=spec.total, desc=description, unit="op", leave=False, dynamic_ncols=True, **progress_options()
        ) as bar:
            while collected < spec.procs:
                try:
                    merged.merge(results.get(timeout=0.25))
                    collected += 1
                except queue_module.Empty:
                    if not any(p.is_alive() for p in processes) and results.empty():
                        raise RuntimeError(f"{description}: a load process died") from None
                bar.update(done.value - bar.n)  # update(), not refresh(): tqdm's mininterval then applies
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return merged


def _child_main(spec: LoadSpec, index: int, done, ready, results) -> None:
    import uvloop

    result = uvloop.run(_child(spec, index, done, ready))
    results.put(result)


def _share(total: int, procs: int, index: int) -> int:
    """Process ``index``'s part of ``total``, split as evenly as it goes."""
    return total // procs + (1 if index < total % procs else 0)


async def _child(spec: LoadSpec, index: int, done, ready) -> LoadResult:
    my_total = _share(spec.total, spec.procs, index)
    my_concurrency = max(1, _share(spec.concurrency, spec.procs, index))
    scenario = SCENARIOS[spec.scenario](spec, index)
    await scenario.open()
    await asyncio.get_running_loop().run_in_executor(None, ready.wait)
    result = LoadResult(spec.scenario)
    deadline = time.monotonic() + spec.deadline_seconds if spec.deadline_seconds else float("inf")
    next_op = 0
    local_done = 0

    async def client(slot: int) -> None:
        nonlocal next_op, local_done
        while next_op < my_total and time.monotonic() < deadline and not scenario.finished:
            n = next_op
            next_op += 1
            await scenario.operate(n, slot, result)
            result.operations += 1
            local_done += 1
            if local_done % 50 == 0:
                with done.get_lock():
                    done.value += 50

    result.started = time.time()
    await asyncio.gather(*(client(slot) for slot in range(my_concurrency)))
    result.finished = time.time()
    with done.get_lock():
        done.value += local_done % 50
    await scenario.close()
    return result


class _Scenario:
    def __init__(self, spec: LoadSpec, index: int) -> None:
        self.spec = spec
        self.index = index
        self.rng = random.Random(spec.seed * 1000 + index)
        # Set by a scenario that ends by itself (best-available: sold out); the clients then stop.
        self.finished = False

    async def open(self) -> None: ...

    async def operate(self, n: int, slot: int, result: LoadResult) -> None: ...

    async def close(self) -> None: ...


class _GrpcScenario(_Scenario):
    async def open(self) -> None:
        import grpc

        self.channels = [
            grpc.aio.insecure_channel(
                self.spec.grpc_target,
                # A private subchannel pool gives each channel its own TCP connection (and so, maybe, its own
                # server worker); shared subchannels would put every channel on one connection.
                options=[("grpc.use_local_subchannel_pool", 1), ("grpc.max_concurrent_streams", 10_000)],
            )
            for _ in range(CHANNELS_PER_PROCESS)
        ]
        for channel in self.channels:
            await asyncio.wait_for(channel.channel_ready(), 30)

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()


class HealthScenario(_GrpcScenario):
    async def open(self) -> None:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        await super().open()
        self.stubs = [health_pb2_grpc.HealthStub(c) for c in self.channels]
        self.request = health_pb2.HealthCheckRequest(service="tix.v1.BookingService")

    async def operate(self, n: int, slot: int, result: LoadResult) -> None:
        import grpc

        started = time.perf_counter()
        try:
            await self.stubs[slot % len(self.stubs)].Check(self.request, timeout=30)
            result.outcomes["ok"] += 1
        except grpc.aio.AioRpcError as error:
            result.outcomes[error.code().name] += 1
        result.latencies.append(time.perf_counter() - started)


def error_reason(error: Any) -> str:
    """``CODE:REASON`` of a gRPC error carrying a google.rpc.ErrorInfo, else the code alone."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    code = error.code().name
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        status = None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return f"{code}:{info.reason}"
    return code


class _FanScenario(_Scenario):
    """Fans choosing 4-seat blocks uniformly at random: every block gets sold, most attempts lose."""

    async def open(self) -> None:
        import httpx

        from bench.catalog import seat_blocks

        self.blocks = seat_blocks(self.spec.seats)
        self.stripe = httpx.AsyncClient(
            base_url=self.spec.stripe_api_base,
            headers={"Authorization": f"Bearer {DEVELOPMENT_STRIPE_API_KEY}"},
            timeout=60,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )

    async def close(self) -> None:
        await self.stripe.aclose()

    def fan(self, n: int) -> str:
        return f"fan-{self.spec.seed}-{self.index}-{n}"

    async def checkout(self, stub: Any, metadata: Any, booking: Any, result: LoadResult) -> str | None:
        """The PaymentIntent to pay: the reservation's own, or (a hold made with ``defer_payment``) the one
        CheckoutBooking makes when the fan proceeds to pay."""
        import grpc

        if not self.spec.defer_payment:
            return str(booking.payment.payment_intent_id)
        try:
            checked_out = await stub.CheckoutBooking(
                self.pb.CheckoutBookingRequest(booking_id=booking.booking_id), metadata=metadata, timeout=60
            )
        except grpc.aio.AioRpcError as error:
            result.outcomes[f"checkout {error_reason(error)}"] += 1
            return None
        return str(checked_out.payment.payment_intent_id)

    async def settle(self, stub: Any, metadata: Any, booking: Any, result: LoadResult, *, seats: int) -> None:
        """A winner checks out (or uses the reservation's intent), pays on the device and confirms; the outcome,
        the seats confirmed (``seats`` when the answer does not list them) and the time from paying to confirmed."""
        import grpc

        paying = time.perf_counter()
        payment_intent_id = await self.checkout(stub, metadata, booking, result)
        if payment_intent_id is None:
            return
        if not await self.pay(payment_intent_id):
            result.outcomes["payment failed"] += 1
            return
        try:
            confirmed = await stub.ConfirmBooking(
                self.pb.ConfirmBookingRequest(booking_id=booking.booking_id, request_id=uuid.uuid4().hex),
                metadata=metadata,
                timeout=60,
            )
        except grpc.aio.AioRpcError as error:
            result.outcomes[f"confirm {error_reason(error)}"] += 1
            return
        if confirmed.status == self.pb.BOOKING_STATUS_CONFIRMED:
            result.confirmed(len(confirmed.seats) or seats, paying)
        else:
            result.outcomes[f"confirm ended {self.pb.BookingStatus.Name(confirmed.status)}"] += 1

    async def pay(self, payment_intent_id: str) -> bool:
        """What Stripe.js does on the fan's device (localstripe takes the card before, not inside, confirm)."""
        if self.spec.fan_pay_seconds:
            await asyncio.sleep(self.spec.fan_pay_seconds)
        attached = await self.stripe.post(
            f"/v1/payment_intents/{payment_intent_id}", data={"payment_method": "pm_card_visa"}
        )
        if attached.status_code != 200:
            return False
        confirmed = await self.stripe.post(f"/v1/payment_intents/{payment_intent_id}/confirm")
        return confirmed.status_code == 200 and confirmed.json()["status"] == "succeeded"


class FlashSaleScenario(_FanScenario, _GrpcScenario):
    async def open(self) -> None:
        from tixpb.v1 import booking_pb2, booking_pb2_grpc

        await _GrpcScenario.open(self)
        await _FanScenario.open(self)
        self.pb = booking_pb2
        self.stubs = [booking_pb2_grpc.BookingServiceStub(c) for c in self.channels]

    async def close(self) -> None:
        await _FanScenario.close(self)
        await _GrpcScenario.close(self)

    async def operate(self, n: int, slot: int, result: LoadResult) -> None:
        import grpc

        stub = self.stubs[slot % len(self.stubs)]
        block = self.rng.choice(self.blocks)
        metadata = (("x-user-id", self.fan(n)),)
        request = self.pb.ReserveSeatsRequest(
            event_id=str(self.spec.event_id), seat_ids=list(block),
            request_id=uuid.uuid4().hex if self.spec.request_ids else "", defer_payment=self.spec.defer_payment,
        )
        started = time.perf_counter()
        try:
            booking = await stub.ReserveSeats(request, metadata=metadata, timeout=60)
        except grpc.aio.AioRpcError as error:
            result.latencies.append(time.perf_counter() - started)
            result.outcomes[f"reserve {error_reason(error)}"] += 1
            return
        result.latencies.append(time.perf_counter() - started)
        result.outcomes["reserve won"] += 1

        await self.settle(stub, metadata, booking, result, seats=len(block))


class NaiveScenario(_FanScenario):
    async def open(self) -> None:
        import psycopg

        await super().open()
        per_process = max(1, self.spec.db_connections // self.spec.procs)
        self.connections: asyncio.Queue = asyncio.Queue()
        for _ in range(per_process):
            self.connections.put_nowait(await psycopg.AsyncConnection.connect(self.spec.dsn, autocommit=True))

    async def close(self) -> None:
        while not self.connections.empty():
            await self.connections.get_nowait().close()
        await super().close()

    async def operate(self, n: int, slot: int, result: LoadResult) -> None:
        from bench.naive import naive_reserve_and_pay

        block = self.rng.choice(self.blocks)
        started = time.perf_counter()
        conn = await self.connections.get()  # waiting for a connection is part of the naive design's cost
        try:
            outcome = await naive_reserve_and_pay(conn, self, self.spec.event_id, block, self.fan(n))
        except Exception as error:  # noqa: BLE001 - a failed transaction is an outcome to count, not a crash
            outcome = f"error {type(error).__name__}"
            if not conn.closed:
                await conn.rollback()
        finally:
            self.connections.put_nowait(conn)
        elapsed = time.perf_counter() - started
        result.latencies.append(elapsed)
        if outcome == "confirmed":
            result.confirmed(len(block))
        else:
            result.outcomes[outcome] += 1


def http_error_reason(status: int, body: bytes) -> str:
    """``CODE:REASON`` of a REST error whose body is the JSON google.rpc.Status the edge sends (transcoded from the
    service's status, or Envoy's own local reply), named as :func:`error_reason` names the gRPC ones."""
    import grpc

    try:
        payload = json.loads(body)
        code = int(payload["code"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP_{status}"
    name = next((c.name for c in grpc.StatusCode if c.value[0] == code), f"CODE_{code}")
    for detail in payload.get("details") or ():
        if isinstance(detail, dict) and detail.get("reason"):
            return f"{name}:{detail['reason']}"
    return name


class _RestScenario(_Scenario):
    """aiohttp over HTTP/1.1 keep-alive to the Envoy edge, one pooled connection per concurrent client."""

    async def open(self) -> None:
        import aiohttp

        from tix_dev.tokens import TokenSigner

        self.concurrency = max(1, _share(self.spec.concurrency, self.spec.procs, self.index))
        self.http = aiohttp.ClientSession(
            base_url=self.spec.http_base,
            connector=aiohttp.TCPConnector(limit=self.concurrency, keepalive_timeout=120),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        self.signer = TokenSigner(Path(self.spec.signing_key_path))
        # Open the pool's connections before the clock starts (Envoy refuses a call without a token itself).
        await asyncio.gather(*(self.call("GET", "/v1/bookings/not-a-uuid", None, None) for _ in range(self.concurrency)))

    async def close(self) -> None:
        await self.http.close()

    def sign(self, user_id: str) -> str:
        """A fan's bearer token, as ``tix token`` makes it."""
        return self.signer.sign(user_id, ttl_seconds=6 * 3600)

    async def call(self, method: str, path: str, token: str | None, body: bytes | None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(method, path, data=body, headers=headers) as response:
            return response.status, await response.read()


class RestEchoScenario(_RestScenario):
    """``GET /v1/bookings/not-a-uuid``: JWT verified, transcoded, refused by the booking service before any store."""

    async def open(self) -> None:
        await super().open()
        # As many fans as clients, so the edge verifies a different token on most calls, as in the sale.
        self.tokens = [self.sign(f"echo-{self.spec.seed}-{self.index}-{i}") for i in range(self.concurrency * 4)]

    async def operate(self, n: int, slot: int, result: LoadResult) -> None:
        import aiohttp

        started = time.perf_counter()
        try:
            status, body = await self.call("GET", "/v1/bookings/not-a-uuid", self.tokens[n % len(self.tokens)], None)
            result.outcomes[http_error_reason(status, body) if status != 200 else "ok"] += 1
        except (TimeoutError, aiohttp.ClientError) as error:
            result.outcomes[type(error).__name__] += 1
        result.latencies.append(time.perf_counter() - started)


class EdgeLocalScenario(_RestScenario):
    """``GET /v1/bookings/not-a-uuid`` without a token: Envoy's JWT filter answers 401, nothing goes upstream."""

    async def operate(self, n: int, slot: int, result: LoadResult) -> None:
        import aiohttp

        started = time.perf_counter()
        try:
            status, body = await self.call("GET", "/v1/bookings/not-a-uuid", None, None)
            result.outcomes[http_error_reason(status, body) if status != 200 else "ok"] += 1
        except (TimeoutError, aiohttp.ClientError) as error:
            result.outcomes[type(error).__name__] += 1
        result.latencies.append(time.perf_counter() - started)


class RestFlashSaleScenario(_FanScenario, _RestScenario):
    """The flash sale through the edge. Fans are signed in up front (RS256 signing is slow): a pool big enough for
    every winner of this process plus one per client. A fan who loses tries again later; one who wins is retired,
    so no fan reaches the per-fan seat limit, as no fan of the gRPC sale does."""

    async def open(self) -> None:
        from bench.catalog import BLOCK

        await _RestScenario.open(self)
        await _FanScenario.open(self)
        winners = -(-self.spec.seats // BLOCK // self.spec.procs)
        self.signed = 0
        self.fans: collections.deque[tuple[str, str]] = collections.deque(
            self.new_fan() for _ in range(winners + winners // 4 + self.concurrency)
        )

    async def close(self) -> None:
        await _FanScenario.close(self)
        await _RestScenario.close(self)

    def new_fan(self) -> tuple[str, str]:
        self.signed += 1
        user_id = f"fan-{self.spec.seed}-rest-{self.index}-{self.signed}"
        return user_id, self.sign(user_id)

    async def operate(self, n: int, slot: int, result: LoadResult) -> None:
        import aiohttp

        block = self.rng.choice(self.blocks)
        fan = self.fans.popleft() if self.fans else self.new_fan()
        token = fan[1]
        body = {"eventId": str(self.spec.event_id), "seatIds": list(block)}
        if self.spec.request_ids:
            body["requestId"] = uuid.uuid4().hex
        started = time.perf_counter()
        try:
            status, payload = await self.call("POST", "/v1/bookings:reserve", token, json.dumps(body).encode())
        except (TimeoutError, aiohttp.ClientError) as error:
            result.latencies.append(time.perf_counter() - started)
            result.outcomes[f"reserve {type(error).__name__}"] += 1
            self.fans.append(fan)
            return
        result.latencies.append(time.perf_counter() - started)
        if status != 200:
            result.outcomes[f"reserve {http_error_reason(status, payload)}"] += 1
            self.fans.append(fan)
            return
        result.outcomes["reserve won"] += 1
        booking = json.loads(payload)

        paying = time.perf_counter()
        if not await self.pay(booking["payment"]["paymentIntentId"]):
            result.outcomes["payment failed"] += 1
            return
        try:
            status, payload = await self.call(
                "POST", f"/v1/bookings/{booking['bookingId']}:confirm", token,
                json.dumps({"requestId": uuid.uuid4().hex}).encode(),
            )
        except (TimeoutError, aiohttp.ClientError) as error:
            result.outcomes[f"confirm {type(error).__name__}"] += 1
            return
        if status != 200:
            result.outcomes[f"confirm {http_error_reason(status, payload)}"] += 1
            return
        confirmed = json.loads(payload)
        if confirmed.get("status") == "BOOKING_STATUS_CONFIRMED":
            result.confirmed(len(confirmed.get("seats") or ()) or len(block), paying)
        else:
            result.outcomes[f"confirm ended {confirmed.get('status')}"] += 1


class BestAvailableScenario(_FanScenario, _GrpcScenario):
    """Fans asking best-available for N seats (N uniform in ``spec.quantities``), each a new fan. A quantity the
    service answers "no N adjacent seats" for is not asked again by this process; when none is left, the process
    stops (sold out). Winners pay and confirm in the background (a fan who won goes off to pay; the next fan takes
    the client's turn), at most 16 at once per process. With ``spec.call_deadline`` each call carries a deadline
    drawn from that range: fans who give up."""

    async def open(self) -> None:
        import httpx

        from tixpb.v1 import booking_pb2, booking_pb2_grpc

        await _GrpcScenario.open(self)
        self.stripe = httpx.AsyncClient(
            base_url=self.spec.stripe_api_base,
            headers={"Authorization": f"Bearer {DEVELOPMENT_STRIPE_API_KEY}"},
            timeout=60,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )
        self.pb = booking_pb2
        self.stubs = [booking_pb2_grpc.BookingServiceStub(c) for c in self.channels]
        self.quantities = list(range(self.spec.quantities[0], self.spec.quantities[1] + 1))
        self.payers = asyncio.Semaphore(16)
        self.paying: set[asyncio.Task[None]] = set()
        self.result: LoadResult | None = None

    async def close(self) -> None:
        if self.paying:
            await asyncio.gather(*self.paying, return_exceptions=True)
        await self.stripe.aclose()
        await _GrpcScenario.close(self)

    async def operate(self, n: int, slot: int, result: LoadResult) -> None:
        import grpc

        if not self.quantities:
            self.finished = True
            return
        self.result = result
        quantity = self.rng.choice(self.quantities)
        stub = self.stubs[slot % len(self.stubs)]
        metadata = (("x-user-id", f"fan-{self.spec.seed}-ba-{self.index}-{n}"),)
        request = self.pb.ReserveSeatsRequest(
            event_id=str(self.spec.event_id), best_available=self.pb.BestAvailable(quantity=quantity),
            request_id=uuid.uuid4().hex, defer_payment=self.spec.defer_payment,
        )
        low, high = self.spec.call_deadline
        timeout = self.rng.uniform(low, high) if high else 60
        started = time.perf_counter()
        try:
            booking = await stub.ReserveSeats(request, metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            result.latencies.append(time.perf_counter() - started)
            reason = error_reason(error)
            result.outcomes[f"reserve {reason}"] += 1
            if reason == "ABORTED:SEAT_UNAVAILABLE" and quantity in self.quantities:
                # No block of this size is left (the allocator answers from the whole event).
                self.quantities = [q for q in self.quantities if q < quantity]
            elif reason.startswith(("RESOURCE_EXHAUSTED", "UNAVAILABLE")):
                await asyncio.sleep(self.rng.uniform(0.5, 1.0))  # as RetryInfo asks
            return
        result.latencies.append(time.perf_counter() - started)
        result.outcomes["reserve won"] += 1
        task = asyncio.create_task(self._pay(stub, metadata, booking, result))
        self.paying.add(task)
        task.add_done_callback(self.paying.discard)

    async def _pay(self, stub: Any, metadata: Any, booking: Any, result: LoadResult) -> None:
        async with self.payers:
            await self.settle(stub, metadata, booking, result, seats=len(booking.seats))


SCENARIOS = {
    "health": HealthScenario,
    "flash_sale": FlashSaleScenario,
    "naive": NaiveScenario,
    "rest_flash_sale": RestFlashSaleScenario,
    "rest_echo": RestEchoScenario,
    "edge_local": EdgeLocalScenario,
    "best_available": BestAvailableScenario,
}
