"""Frees shopper slots as booking reports admitted fans done (``tix.admission`` stream of admission ends).

Each queue process reads the stream in one consumer group, so an end is handled by one process; the slot is freed
(idempotently) before the entry is acknowledged, and entries a crashed process took are claimed by another. After a
free the event is stepped at once, so the next fan in line is admitted without waiting for the next tick.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable

from prometheus_client import Counter

from queue_svc.domain import WaitingRoom
from tix.admission import AdmissionEndsReader, EndedAdmission
from tix.logs import get_logger

log = get_logger("queue_svc.slots")

FREED = Counter("tix_queue_slots_freed_total", "Shopper slots freed because booking reported an end.", ["end"])

_CLAIM_EVERY_SECONDS = 15.0


async def free_ended_slots(room: WaitingRoom, ends: list[EndedAdmission]) -> set[int]:
    """Free the slots of ``ends``; returns the events whose line may move now."""
    by_event: dict[int, list[str]] = defaultdict(list)
    for end in ends:
        if end.event_id and end.ticket_id:
            by_event[end.event_id].append(end.ticket_id)
            FREED.labels(end.end or "unknown").inc()
    for event_id, tickets in by_event.items():
        await room.free_slots(event_id, tickets)
    return set(by_event)


async def run_slot_freeing(
    reader: AdmissionEndsReader, room: WaitingRoom, on_freed: Callable[[set[int]], None]
) -> None:
    """Until cancelled: read ends, free their slots, acknowledge; Redis trouble is logged and retried."""
    claimed_at = 0.0
    while True:
        try:
            if time.monotonic() - claimed_at >= _CLAIM_EVERY_SECONDS:
                claimed_at = time.monotonic()
                ends = await reader.claim_abandoned()
            else:
                ends = await reader.read()
            if ends:
                on_freed(await free_ended_slots(room, ends))
                await reader.acknowledge(ends)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - Redis may be briefly away; keep reading
            log.warning("slot_freeing_failed", error=repr(error))
            await asyncio.sleep(1.0)
