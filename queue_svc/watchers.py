"""One loop per process steps every listed event's line and pushes what changed to the process's WatchQueue streams.

Admission advances on its own schedule, whoever is watching: each tick the loop steps every event listed in Redis
(fans joined it) and every event this process has watchers of; a lease in Redis lets one process step an event
(the others read the line), and a step that moved the line is announced on pub/sub so the other processes push at
once instead of at their next tick.

Pushing is built for tens of thousands of streams per process:
- per tick and event one Redis round trip (the step or the read), then every watcher's view is computed in memory
  (``sequence - serving``), with no Redis call per watcher; only fans whose state changes (placed by the draw,
  admitted, passed over) are read from Redis, in one batched round trip;
- a message goes out only when what the fan sees changes (position, state), or as a heartbeat; beyond the first
  100 places the position is shown rounded up to two significant figures (``domain.displayed_position``), so a
  step changes what most of a long line sees only now and then (the front sees every step); a change of the
  estimate alone by a tenth or more (the measured pace drifts) at most every ``estimate_refresh_seconds``; pre-queue fans, who all
  see the same figures, at most every ``pre_queue_refresh_seconds``;
- each distinct message body is serialized once per round and joined to the watcher's own serialized prefix (ticket
  id, event, join time: fixed for the stream's life), so the stream writes ready bytes;
- watchers are woken in batches, with the event loop free between batches, so health checks and new streams are
  answered while a step reaches 20,000 fans;
- watchers' presence (an open stream keeps the place) is written to Redis in batches: new streams every tick, all of
  them every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, Protocol

from prometheus_client import Counter, Gauge, Histogram

from queue_svc.domain import (
    LineState,
    QueueTicketView,
    StoredTicket,
    TicketState,
    WaitingRoom,
    WaitingRoomSettings,
    displayed_position,
    displayed_wait,
)
from tix.errors import NotFound
from tix.logs import get_logger

log = get_logger("queue_svc.watchers")

WATCHERS = Gauge("tix_queue_watchers", "Open WatchQueue streams in this process.")
FAN_OUT_SECONDS = Histogram(
    "tix_queue_fan_out_seconds", "Time to compute and hand out one event's updates to this process's watchers.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
# The line as the process holding an event's lease steps it (one reporter per event at a time, whichever process):
# what the day's alerts watch (k8s/components/monitoring). Labelled by event: only events with a line are stepped.
ADMITTED = Counter("tix_queue_admitted_total", "Fans admitted from an event's line.", ["event_id"])
LINE_WAITING = Gauge(
    "tix_queue_waiting", "Fans in an event's line, pre-queue included.", ["event_id"], multiprocess_mode="livemostrecent"
)
LINE_ACTIVE = Gauge(
    "tix_queue_active_shoppers", "Admitted fans still shopping (against the cap).", ["event_id"],
    multiprocess_mode="livemostrecent",
)
LINE_MAX_ACTIVE = Gauge(
    "tix_queue_max_active_shoppers", "The event's shopper cap.", ["event_id"], multiprocess_mode="livemostrecent"
)
LINE_PAUSED = Gauge(
    "tix_queue_paused", "1 while an operator has paused the event's admissions.", ["event_id"],
    multiprocess_mode="livemostrecent",
)

_FINAL = (TicketState.ADMITTED, TicketState.EXPIRED)
STEPS_CHANNEL = "tix:q:stepped"
# With a line that did not move, the watchers are still walked this often (heartbeats, estimate refreshes).
_QUIET_PASS_SECONDS = 1.0
# Watchers looked at between two yields to the event loop (a few milliseconds of Python).
_WALK_BATCH = 2000


class Renderer(Protocol):
    """Turns views into wire bytes (the servicer's proto): the fixed part of a ticket once, the changing part once
    per distinct view; the two concatenated are one message."""

    def prefix(self, ticket: StoredTicket) -> bytes: ...
    def body(self, view: QueueTicketView) -> bytes: ...


class _Watcher:
    __slots__ = ("final", "message", "prefix", "sent_at", "shown", "ticket", "wake")

    def __init__(self, ticket: StoredTicket, prefix: bytes) -> None:
        self.ticket = ticket
        self.prefix = prefix
        self.shown: Hashable = None
        self.message = b""
        self.sent_at = 0.0
        self.final = False
        self.wake = asyncio.Event()

    def send(self, message: bytes, shown: Hashable, now: float, *, final: bool = False) -> None:
        """Hand the stream its newest message (a slow reader skips stale ones) and wake it."""
        self.message, self.shown, self.sent_at, self.final = message, shown, now, final
        self.wake.set()


class _EventWatchers:
    __slots__ = ("line", "line_at", "passed_at", "seen", "watchers")

    def __init__(self) -> None:
        self.watchers: set[_Watcher] = set()
        self.line: LineState | None = None
        self.line_at = 0.0
        self.seen: Hashable = None  # what the last full pass over the watchers was computed from
        self.passed_at = 0.0


def _close(shown: float | None, wait: float | None) -> bool:
    """An estimate within a tenth of the one the fan was shown is not news (the measured pace jitters step to step;
    a fan a thousand places back would otherwise be told a new figure every refresh)."""
    return shown is not None and wait is not None and abs(wait - shown) < 0.1 * max(shown, 10.0)


def _shown(view: QueueTicketView) -> Hashable:
    return (view.state, view.position, view.estimated_wait_seconds, view.fans_waiting)


class QueueWatchers:
    def __init__(
        self,
        room: WaitingRoom,
        renderer: Renderer,
        *,
        owner: str,
        tick_seconds: float,
        heartbeat_seconds: float,
        lease_seconds: float,
        presence_refresh_seconds: float,
        pre_queue_refresh_seconds: float = 5.0,
        estimate_refresh_seconds: float = 10.0,
        wake_batch: int = 100,
    ) -> None:
        self._room = room
        self._repo = room.repository
        self._render = renderer
        self._owner = owner
        self._tick = tick_seconds
        self._heartbeat = heartbeat_seconds
        self._lease = lease_seconds
        self._presence_refresh = presence_refresh_seconds
        self._pre_queue_refresh = pre_queue_refresh_seconds
        self._estimate_refresh = estimate_refresh_seconds
        self._wake_batch = wake_batch
        self._by_event: dict[int, _EventWatchers] = {}
        self._serving: dict[int, int] = {}
        self._wake = asyncio.Event()
        self._presence_written_at = 0.0
        self._opened: dict[int, list[str]] = {}  # tickets of streams opened since presence was last written
        self._publish: asyncio.Queue[int] = asyncio.Queue()

    def watcher_count(self) -> int:
        return sum(len(group.watchers) for group in self._by_event.values())

    def step_now(self, event_ids: set[int] | None = None) -> None:
        """Slots were freed, or another process stepped a line: run a round now instead of at the next tick."""
        self._wake.set()

    # --- one stream -------------------------------------------------------------------------------------------

    async def watch(self, ticket: StoredTicket) -> AsyncIterator[bytes]:
        """Yield the ticket's state now, then whenever what the fan sees changes (or a heartbeat is due), until
        admitted or expired."""
        event_id = ticket.event_id
        self._opened.setdefault(event_id, []).append(ticket.ticket_id)  # even a stream open for an instant counts
        settings = await self._room.settings_of(event_id)
        group = self._by_event.get(event_id)
        if group is not None and group.line is not None and time.monotonic() - group.line_at < self._tick * 2:
            line = group.line
        else:
            line = await self._room.line_state(event_id)
        if (ticket.sequence == 0 and line.opened) or (0 < ticket.sequence <= line.serving):
            ticket = await self._repo.ticket(event_id, ticket.ticket_id) or ticket
        view = await self._room.view(ticket, line, settings)
        watcher = _Watcher(ticket, self._render.prefix(ticket))
        watcher.message = watcher.prefix + self._render.body(view)
        watcher.shown, watcher.sent_at = _shown(view), time.monotonic()
        yield watcher.message
        if view.state in _FINAL:
            return
        group = self._by_event.setdefault(event_id, _EventWatchers())
        group.watchers.add(watcher)
        WATCHERS.inc()
        try:
            while True:
                await watcher.wake.wait()
                watcher.wake.clear()
                # Read together: a final message handed over while this stream was writing the one before must
                # still be written (checking ``final`` after the yield ended the stream without it).
                message, final = watcher.message, watcher.final
                yield message
                if final:
                    return
        finally:
            WATCHERS.dec()
            group.watchers.discard(watcher)
            if not group.watchers and self._by_event.get(event_id) is group:
                del self._by_event[event_id]

    # --- the loop ---------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """The per-process loop; an error for one event is logged and the loop goes on."""
        while True:
            started = time.monotonic()
            self._wake.clear()
            try:
                await self.round()
            except Exception as exc:  # noqa: BLE001 - Redis or the database may be briefly away
                log.warning("queue_round_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, self._tick - (time.monotonic() - started)))

    async def round(self) -> None:
        """Step (or read) every listed event and every event watched here, push the changes, write presence."""
        listed = await self._repo.events_to_step()
        for event_id in set(listed) | set(self._by_event):
            try:
                await self._event_round(event_id, listed.get(event_id))
            except NotFound:
                await self._repo.forget_idle_event(event_id, listed.get(event_id, 0.0))
            except Exception as exc:  # noqa: BLE001 - one event's trouble must not stop the others
                log.warning("queue_event_round_failed", event_id=event_id, error=repr(exc))
        await self._write_presence()

    async def _event_round(self, event_id: int, listed_as: float | None) -> None:
        settings = await self._room.settings_of(event_id)
        line = await self._room.step(settings, owner=self._owner, lease_seconds=self._lease)
        moved = self._serving.get(event_id) != line.serving
        self._serving[event_id] = line.serving
        if line.stepped:
            _report(event_id, line, settings)
        if line.stepped and moved:
            self._publish.put_nowait(event_id)
        group = self._by_event.get(event_id)
        if group is not None:
            group.line, group.line_at = line, time.monotonic()
            started = time.perf_counter()
            await self._fan_out(event_id, group, line, settings)
            FAN_OUT_SECONDS.observe(time.perf_counter() - started)
        elif listed_as is not None and line.waiting == 0 and line.pre_queue == 0:
            await self._repo.forget_idle_event(event_id, listed_as)
            self._serving.pop(event_id, None)

    async def _fan_out(
        self, event_id: int, group: _EventWatchers, line: LineState, settings: WaitingRoomSettings
    ) -> None:
        now = time.monotonic()
        pace = self._room.pace(line, settings)
        seen = (line.serving, line.opened, line.pre_queue, round(pace, 2), len(group.watchers))
        if seen == group.seen and now - group.passed_at < _QUIET_PASS_SECONDS:
            return  # nothing a watcher sees can have changed; heartbeats and estimates wait for the next pass
        group.seen, group.passed_at = seen, now
        heartbeat, pre_refresh = self._heartbeat, self._pre_queue_refresh
        estimate_refresh = self._estimate_refresh
        quiet_for = min(estimate_refresh, heartbeat)  # same place shown this recently: nothing can be due
        serving = line.serving
        bodies: dict[Hashable, bytes] = {}
        passed: list[_Watcher] = []
        woken = 0
        for walked, watcher in enumerate(list(group.watchers), 1):
            if walked % _WALK_BATCH == 0:
                await asyncio.sleep(0)  # a long walk with few changes still lets health checks and new streams in
            if watcher.final:
                continue
            sequence = watcher.ticket.sequence
            if sequence > serving:
                exact = sequence - serving
                position = displayed_position(exact)
                before = watcher.shown
                if (
                    type(before) is tuple and before[1] == position and before[0] is TicketState.WAITING
                    and now - watcher.sent_at < quiet_for
                ):
                    continue  # most of a long line on most steps: the figure it is shown did not change
                wait = displayed_wait(exact / pace) if pace > 0 else None
                shown: Hashable = (TicketState.WAITING, position, wait, 0)
                if shown == before or (
                    # Only the estimate moved (the measured pace drifts): tell the fan at most every few seconds,
                    # and only when it moved by a tenth or more.
                    type(before) is tuple
                    and before[:2] == (TicketState.WAITING, position)
                    and (now - watcher.sent_at < estimate_refresh or _close(before[2], wait))
                ):
                    if now - watcher.sent_at < heartbeat:
                        continue
                    watcher.send(watcher.message, watcher.shown, now)
                else:
                    body = bodies.get(shown)
                    if body is None:
                        body = bodies[shown] = self._render.body(QueueTicketView(
                            watcher.ticket.ticket_id, event_id, TicketState.WAITING, position, wait, 0.0, None, None
                        ))
                    watcher.send(watcher.prefix + body, shown, now)
            elif sequence == 0 and not line.opened:
                view = self._room.waiting_view(watcher.ticket, line, settings)
                assert view is not None  # still in the pre-queue
                shown = _shown(view)
                due = now - watcher.sent_at
                if due < heartbeat and (shown == watcher.shown or due < pre_refresh):
                    continue
                body = bodies.get(shown)
                if body is None:
                    body = bodies[shown] = self._render.body(view)
                watcher.send(watcher.prefix + body, shown, now)
            else:
                passed.append(watcher)  # placed by the draw, admitted or passed over: the stored ticket says
                continue
            woken += 1
            if woken % self._wake_batch == 0:
                await asyncio.sleep(0)  # let the woken streams write, and other calls in, before the next batch
        if passed:
            await self._settle(event_id, passed, line, settings)

    async def _settle(
        self, event_id: int, watchers: list[_Watcher], line: LineState, settings: WaitingRoomSettings
    ) -> None:
        """Watchers whose stored ticket changed: read them in one round trip and send their new state."""
        stored = await self._repo.tickets(event_id, [w.ticket.ticket_id for w in watchers])
        now = time.monotonic()
        for watcher in watchers:
            ticket = stored.get(watcher.ticket.ticket_id)
            if ticket is None:  # expired from Redis (days later): nothing more to say
                watcher.send(watcher.message, watcher.shown, now, final=True)
                continue
            watcher.ticket = ticket
            view = self._room.waiting_view(ticket, line, settings)
            if view is None:
                if ticket.sequence > 0 and ticket.admitted_at is None and not ticket.left:
                    continue  # the serving counter passed it an instant ago; the next round has the record
                view = await self._room.final_view(ticket)
            shown = _shown(view)
            if shown != watcher.shown:
                watcher.send(watcher.prefix + self._render.body(view), shown, now, final=view.state in _FINAL)

    async def _write_presence(self) -> None:
        """Streams keep their fans' places: new ones now, every open one every ``presence_refresh_seconds``."""
        opened, self._opened = self._opened, {}
        if time.monotonic() - self._presence_written_at >= self._presence_refresh:
            self._presence_written_at = time.monotonic()
            for event_id, group in self._by_event.items():
                opened.setdefault(event_id, []).extend(w.ticket.ticket_id for w in group.watchers if not w.final)
        for event_id, tickets in opened.items():
            await self._repo.mark_present(event_id, list(dict.fromkeys(tickets)))

    # --- pub/sub between processes ----------------------------------------------------------------------------

    async def announce_steps(self, publish: Callable[[str, str], Awaitable[Any]]) -> None:
        """Tell the other queue processes that a line moved, so they push now rather than at their next tick."""
        while True:
            event_id = await self._publish.get()
            with contextlib.suppress(Exception):
                await publish(STEPS_CHANNEL, f"{event_id}:{self._owner}")

    def heard_step(self, message: str) -> None:
        event, _, owner = message.partition(":")
        if owner != self._owner and event.isdigit() and int(event) in self._by_event:
            self._wake.set()


def _report(event_id: int, line: LineState, settings: WaitingRoomSettings) -> None:
    label = str(event_id)
    if line.admitted:
        ADMITTED.labels(label).inc(line.admitted)
    LINE_WAITING.labels(label).set(line.waiting + line.pre_queue)
    LINE_ACTIVE.labels(label).set(line.active)
    LINE_MAX_ACTIVE.labels(label).set(settings.max_active)
    LINE_PAUSED.labels(label).set(1 if settings.paused else 0)
