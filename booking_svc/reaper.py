"""The hold reaper: deletes Redis seat holds that no live booking stands behind, so a crash, a lost answer or a bug
between "hold" and "reservation" cannot keep seats off sale for a hold's whole TTL (ten minutes) while the seat map
shows them free.

A hold key (``tix:hold:{<event>}:<seat>``, valued with a booking id) is a leak when it is older than the grace
period (its age is the hold length minus its remaining TTL) and its booking
- does not exist in PostgreSQL (the reservation never committed), or
- has ended (cancelled, expired, refunded), or is reserved for other seats (a retry's stray block).
Keys of reserved bookings holding them, and sold markers (``sold:<booking>``), are left alone. Deletion is the
holds' own compare-and-delete (``SeatHolds.release``), so a key a new booking took meanwhile is never touched, and
best-available's allocator is told the seats are free again.

It runs in every booking process (``hold_reaper_interval_seconds``; replicas may overlap, harmlessly), as the
``tix bookings reap-holds`` command, and so as a Kubernetes CronJob.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from redis.exceptions import RedisError

from booking_svc.holds import SeatHolds
from booking_svc.repository import BookingRepository
from booking_svc.settings import BookingSettings
from tix.logs import get_logger
from tix.redis_pool import as_optional_text, as_text

log = get_logger("booking_svc.reaper")

REAPED = Counter("tix_booking_holds_reaped_total", "Leaked Redis seat holds deleted by the reaper, by cause.", ["cause"])

_SCAN_COUNT = 1000


@dataclass
class ReapReport:
    scanned: int = 0
    leaked: int = 0
    reaped: int = 0

    def summary(self) -> str:
        return f"hold keys scanned: {self.scanned}; leaked: {self.leaked}; deleted: {self.reaped}"


@dataclass(frozen=True)
class _Hold:
    event_id: int
    seat_id: str
    booking_id: uuid.UUID


def _parse(key: str) -> tuple[int, str] | None:
    """``tix:hold:{<event>}:<seat>`` -> (event, seat)."""
    head, _, seat = key.partition("}:")
    _, _, event = head.partition("{")
    return (int(event), seat) if event.isdigit() and seat else None


async def _old_holds(holds: SeatHolds, hold_ms: int, grace_ms: int, report: ReapReport) -> list[_Hold]:
    """Hold keys on every reachable node older than the grace period, valued with a booking id."""
    found: dict[tuple[int, str, uuid.UUID], _Hold] = {}
    for node in holds.nodes:
        try:
            async for batch in _scan_batches(node):
                pipe = node.pipeline(transaction=False)
                for key in batch:
                    pipe.get(key)
                    pipe.pttl(key)
                replies = await pipe.execute()
                for i, key in enumerate(batch):
                    report.scanned += 1
                    value, ttl = as_optional_text(replies[2 * i]), int(replies[2 * i + 1])
                    parsed = _parse(key)
                    if value is None or parsed is None or value.startswith("sold:") or ttl < 0:
                        continue
                    if hold_ms - ttl < grace_ms:
                        continue
                    try:
                        booking_id = uuid.UUID(value)
                    except ValueError:
                        continue
                    found[(*parsed, booking_id)] = _Hold(parsed[0], parsed[1], booking_id)
        except (TimeoutError, RedisError, OSError) as error:
            log.warning("reaper_node_unreachable", error=repr(error))
    return list(found.values())


async def _scan_batches(node: Any) -> AsyncIterator[list[str]]:
    batch: list[str] = []
    async for key in node.scan_iter(match="tix:hold:*", count=_SCAN_COUNT):
        batch.append(as_text(key))
        if len(batch) >= _SCAN_COUNT:
            yield batch
            batch = []
    if batch:
        yield batch


async def reap_holds(
    holds: SeatHolds, repository: BookingRepository, *, hold_ms: int, grace_seconds: float
) -> ReapReport:
    """One pass over every node's hold keys; see the module docstring."""
    report = ReapReport()
    old = await _old_holds(holds, hold_ms, int(grace_seconds * 1000), report)
    states = await repository.booking_states(sorted({h.booking_id for h in old}))
    leaked: dict[tuple[int, uuid.UUID], list[str]] = defaultdict(list)
    for hold in old:
        state = states.get(hold.booking_id)
        if state is None:
            cause = "no_booking"
        elif state[0] in ("cancelled", "expired", "refunded"):
            cause = "booking_ended"
        elif state[0] == "reserved" and hold.seat_id not in state[1]:
            cause = "not_the_bookings_seat"
        else:
            continue
        REAPED.labels(cause).inc()
        leaked[(hold.event_id, hold.booking_id)].append(hold.seat_id)
    for (event_id, booking_id), seat_ids in leaked.items():
        report.leaked += len(seat_ids)
        report.reaped += await holds.release(event_id, seat_ids, str(booking_id))
        log.info("holds_reaped", event_id=event_id, booking_id=str(booking_id), seats=len(seat_ids))
    return report


async def run_reaper(holds: SeatHolds, repository: BookingRepository, settings: BookingSettings) -> None:
    """Reap every ``hold_reaper_interval_seconds`` until cancelled; a failed pass is logged and retried."""
    while True:
        await asyncio.sleep(settings.hold_reaper_interval_seconds)
        try:
            await reap_holds(
                holds, repository, hold_ms=settings.hold_seconds * 1000,
                grace_seconds=settings.hold_reaper_grace_seconds,
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the database may be briefly away; keep reaping
            log.warning("reap_failed", error=repr(error))


async def run_reap_command(settings: BookingSettings, grace_seconds: float | None) -> int:
    """Entry point of ``tix bookings reap-holds``: one pass, a summary; exit code 0."""
    from booking_svc.allocation import SeatAllocator
    from tix.db import create_engine, libpq_url

    engine = create_engine(settings, pool_size=2)
    holds = SeatHolds.from_urls(
        settings.lock_urls(), drift_factor=settings.lock_drift_factor, node_timeout=settings.lock_node_timeout_seconds
    )
    allocator = SeatAllocator(holds.first_node, redis_url=settings.lock_urls()[0],
                              dsn=libpq_url(settings.database_url))
    holds.on_release(allocator.returned)
    try:
        report = await reap_holds(
            holds, BookingRepository(engine), hold_ms=settings.hold_seconds * 1000,
            grace_seconds=settings.hold_reaper_grace_seconds if grace_seconds is None else grace_seconds,
        )
    finally:
        await holds.aclose()
        await engine.dispose()
    print(report.summary())
    return 0
