"""One loop per process pushes queue positions to every open WatchQueue stream.

Per tick and event there is one Redis round trip (advance admissions, read the serving counter); each watcher's
position is then ``sequence - serving``, computed in memory. A stream costs a small queue, not a poll of its own,
so tens of thousands of fans can watch from one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from queue_svc.domain import QueueTicketView, StoredTicket, TicketState, WaitingRoom
from tix.logs import get_logger

log = get_logger("queue_svc.watchers")

_FINAL = (TicketState.ADMITTED, TicketState.EXPIRED)


@dataclass(eq=False)
class _Watcher:
    ticket: StoredTicket
    updates: asyncio.Queue[QueueTicketView] = field(default_factory=lambda: asyncio.Queue(maxsize=1))
    last_sent: QueueTicketView | None = None
    last_sent_at: float = 0.0

    def offer(self, view: QueueTicketView) -> None:
        """Keep only the newest view: a slow reader skips stale positions instead of queueing them."""
        if self.updates.full():
            self.updates.get_nowait()
        self.updates.put_nowait(view)


class QueueWatchers:
    def __init__(self, room: WaitingRoom, *, tick_seconds: float, heartbeat_seconds: float) -> None:
        self._room = room
        self._tick = tick_seconds
        self._heartbeat = heartbeat_seconds
        self._by_event: dict[int, set[_Watcher]] = {}
        self._wake = asyncio.Event()

    def step_now(self, event_ids: set[int]) -> None:
        """Slots were freed: step at once instead of at the next tick."""
        if event_ids & self._by_event.keys():
            self._wake.set()

    def watcher_count(self) -> int:
        return sum(len(watchers) for watchers in self._by_event.values())

    async def watch(self, ticket: StoredTicket) -> AsyncIterator[QueueTicketView]:
        """Yield the ticket's state now, then whenever it changes (or a heartbeat is due), until admitted/expired."""
        settings = await self._room.settings_of(ticket.event_id)
        first = await self._room.view(ticket, await self._room.advance(settings))
        yield first
        if first.state in _FINAL:
            return
        watcher = _Watcher(ticket, last_sent=first, last_sent_at=time.monotonic())
        self._by_event.setdefault(ticket.event_id, set()).add(watcher)
        try:
            while True:
                view = await watcher.updates.get()
                yield view
                if view.state in _FINAL:
                    return
        finally:
            watchers = self._by_event.get(ticket.event_id)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._by_event[ticket.event_id]

    async def run(self) -> None:
        """The per-process loop; an error for one event is logged and the loop goes on."""
        while True:
            started = time.monotonic()
            for event_id in list(self._by_event):
                try:
                    await self._push(event_id)
                except Exception as exc:  # noqa: BLE001 - one event's trouble must not stop the others
                    log.warning("queue_push_failed", event_id=event_id, error=repr(exc))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, self._tick - (time.monotonic() - started)))

    async def _push(self, event_id: int) -> None:
        watchers = list(self._by_event.get(event_id, ()))
        if not watchers:
            return
        settings = await self._room.settings_of(event_id)
        line = await self._room.advance(settings)
        now = time.monotonic()
        for watcher in watchers:
            if watcher.ticket.sequence == 0 or line.serving >= watcher.ticket.sequence:
                # Placed by the draw, or admitted: the stored ticket has news (its sequence, its admission).
                watcher.ticket = await self._room.refresh(watcher.ticket)
            view = await self._room.view(watcher.ticket, line)
            previous = watcher.last_sent
            changed = previous is None or (view.state, view.position) != (previous.state, previous.position)
            if changed or now - watcher.last_sent_at >= self._heartbeat:
                watcher.offer(view)
                watcher.last_sent, watcher.last_sent_at = view, now
