"""Admission tokens: the queue service signs one when it admits a fan; the booking service verifies it.

A token is an HS256 JWT bound to one user and one event, short-lived, and names the queue ticket it came from
(``tix.admission_tokens``, which imports no Redis, so the booking domain can use it). The end of an admitted fan's
booking goes back to the queue through a Redis stream (below).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from tix.admission_tokens import AdmissionEnd, AdmissionToken, issue_admission_token, verify_admission_token
from tix.logs import get_logger
from tix.redis_pool import as_text

__all__ = [
    "ADMISSION_ENDS_GROUP",
    "ADMISSION_ENDS_LENGTH",
    "ADMISSION_ENDS_STREAM",
    "AdmissionEnd",
    "AdmissionEnds",
    "AdmissionEndsReader",
    "AdmissionToken",
    "EndedAdmission",
    "issue_admission_token",
    "verify_admission_token",
]

log = get_logger("tix.admission")

# --- Admission ends: booking tells the queue that an admitted fan is done shopping ------------------------------
#
# When an admitted fan's booking is confirmed, cancelled or expires, the fan's shopper slot must free at once, not
# when the admission token runs out ten minutes later. Booking does not call the queue (the queue may be busy or
# down; a confirmation must never wait for it): it appends the end to one Redis stream, and every queue process reads
# the stream in one consumer group and frees the slot. The booking row records the queue ticket its admission token
# named (``bookings.admission_ticket``, which also spends the token once), so the later transitions, which read the
# row anyway, know whose slot to free.

ADMISSION_ENDS_STREAM = "tix:admission:ends"
ADMISSION_ENDS_GROUP = "tix-queue"
# Ends kept in the stream (trimmed approximately): far more than the queue falls behind by in practice.
ADMISSION_ENDS_LENGTH = 100_000


@dataclass(frozen=True)
class EndedAdmission:
    """One end read from the stream: the queue frees ``ticket_id``'s slot at ``event_id``."""

    entry_id: str
    event_id: int
    ticket_id: str
    booking_id: str
    end: str


class AdmissionEnds:
    """Booking's side: publish the end of a booking bought through a queue ticket.

    Best effort: with Redis away the booking goes on, and the slot frees when its admission token expires.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def publish(self, booking_id: str, event_id: int, ticket_id: str, end: AdmissionEnd) -> bool:
        """Append the end; False when Redis could not take it."""
        try:
            await self._redis.xadd(
                ADMISSION_ENDS_STREAM,
                {"event": event_id, "ticket": ticket_id, "booking": booking_id, "end": end.value},
                maxlen=ADMISSION_ENDS_LENGTH,
                approximate=True,
            )
        except RedisError as error:
            log.warning("admission_end_publish_failed", booking_id=booking_id, end=end.value, error=repr(error))
            return False
        return True


class AdmissionEndsReader:
    """The queue's side: read ends in the consumer group (each end goes to one queue process), acknowledge each
    once its slot is freed. Entries a process took but never acknowledged (it died) are claimed by another after
    ``claim_after_seconds``."""

    def __init__(self, redis: Redis, *, consumer: str, claim_after_seconds: float = 30.0) -> None:
        self._redis = redis
        self._consumer = consumer
        self._claim_after_ms = int(claim_after_seconds * 1000)
        self._group_ready = False

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._redis.xgroup_create(ADMISSION_ENDS_STREAM, ADMISSION_ENDS_GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._group_ready = True

    async def read(self, *, count: int = 500, block_ms: int = 1000) -> list[EndedAdmission]:
        await self._ensure_group()
        try:
            replies: Any = await self._redis.xreadgroup(
                ADMISSION_ENDS_GROUP, self._consumer, {ADMISSION_ENDS_STREAM: ">"}, count=count, block=block_ms
            )
        except ResponseError as error:
            # The stream was deleted (a Redis flush or restart without persistence): make the group again.
            self._group_ready = False
            if "NOGROUP" not in str(error) and "no longer exists" not in str(error):
                raise
            return []
        return [_ended(entry_id, fields) for _, entries in replies or () for entry_id, fields in entries]

    async def claim_abandoned(self, *, count: int = 500) -> list[EndedAdmission]:
        await self._ensure_group()
        reply = await self._redis.xautoclaim(
            ADMISSION_ENDS_STREAM, ADMISSION_ENDS_GROUP, self._consumer, self._claim_after_ms, "0-0", count=count
        )
        entries: list[Any] = list(reply[1]) if reply else []
        return [_ended(entry_id, fields) for entry_id, fields in entries if fields]

    async def acknowledge(self, ends: list[EndedAdmission]) -> None:
        if ends:
            await self._redis.xack(ADMISSION_ENDS_STREAM, ADMISSION_ENDS_GROUP, *(e.entry_id for e in ends))


def _ended(entry_id: bytes | str, fields: dict) -> EndedAdmission:
    values = {as_text(k): as_text(v) for k, v in fields.items()}
    event = values.get("event", "")
    return EndedAdmission(
        as_text(entry_id), int(event) if event.isdigit() else 0, values.get("ticket", ""), values.get("booking", ""),
        values.get("end", ""),
    )
