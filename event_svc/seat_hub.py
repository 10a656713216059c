"""Fan-out of the live seat feed to WatchSeats streams.

One Redis pub/sub connection per process, and on it one subscription per event that has watchers here: the first
watcher of an event subscribes, the last one to leave unsubscribes. Each published change is parsed once and
handed to every watcher's bounded buffer; a watcher that falls too far behind (or misses a publication: each names
the one before it, see tix.seatfeed) is sent a fresh snapshot instead of growing memory. Snapshots for watchers arriving together share one database read (see
``EventViewing.snapshot``), so a burst of new streams costs a few queries, and a change costs none.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from event_svc.domain import EventViewing, SeatMap
from tix import seatfeed
from tix.errors import Unavailable
from tix.logs import get_logger

log = get_logger("event_svc.seat_hub")

SEAT_WATCHERS = Gauge("tix_seat_watchers", "WatchSeats streams open.", multiprocess_mode="livesum")
SEAT_FEED_SUBSCRIPTIONS = Gauge(
    "tix_seat_feed_subscriptions", "Events this process subscribes to on the seat feed.", multiprocess_mode="livesum"
)

# How long a new watcher waits for Redis to confirm its event's subscription.
_SUBSCRIBE_TIMEOUT_SECONDS = 5.0


class _Watcher:
    """One stream's buffer of changes not yet sent."""

    __slots__ = ("limit", "pending", "resync", "wakeup")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending: deque[seatfeed.SeatFeedMessage] = deque()
        self.wakeup = asyncio.Event()
        # Set when buffered changes were dropped: the stream must start again from a fresh snapshot.
        self.resync = False

    def offer(self, message: seatfeed.SeatFeedMessage) -> None:
        if self.resync:
            return  # the coming snapshot is read after this change, so it includes it
        if len(self.pending) >= self.limit:
            self.request_resync()
            return
        self.pending.append(message)
        self.wakeup.set()

    def request_resync(self) -> None:
        self.pending.clear()
        self.resync = True
        self.wakeup.set()


class SeatHub:
    def __init__(self, redis: Redis, viewing: EventViewing, *, watcher_queue_size: int) -> None:
        self._viewing = viewing
        self._queue_size = watcher_queue_size
        self._pubsub = redis.pubsub()
        self._watchers: dict[int, set[_Watcher]] = {}
        # Events whose SUBSCRIBE has been sent (and no UNSUBSCRIBE since), with the future its confirmation sets.
        self._subscriptions: dict[int, asyncio.Future] = {}
        # Confirmations not yet received, per channel, in the order the SUBSCRIBEs were sent.
        self._unconfirmed: dict[str, deque[asyncio.Future]] = {}
        self._commands = asyncio.Lock()
        self._connected = asyncio.Event()
        self._background: set[asyncio.Task] = set()

    # --- what the servicer uses ---------------------------------------------------------------------------------

    async def watch(self, event_id: int) -> AsyncIterator[SeatMap | seatfeed.SeatFeedMessage]:
        """A snapshot, then every change after it; another snapshot whenever the stream fell behind."""
        await self._viewing.catalog_entry(event_id)  # unknown events fail before subscribing to anything
        watcher = _Watcher(self._queue_size)
        try:
            await self._join(event_id, watcher)
            # The last publication passed on; None right after a snapshot, whatever came before it.
            last: int | None = None
            watcher.resync = True
            while True:
                if watcher.resync:
                    watcher.resync = False
                    watcher.pending.clear()
                    # Taken after the subscription is live: changes from here on are buffered or in the snapshot.
                    # Buffered ones may be in it too (the snapshot's version cannot tell a change committed just
                    # before the read from one just after): they are passed on, and setting a status twice is
                    # harmless.
                    mark = self._viewing.mark()
                    snapshot = await self._viewing.snapshot(event_id, not_before=mark)
                    last = None
                    yield snapshot
                    continue
                if not watcher.pending:
                    watcher.wakeup.clear()
                    await watcher.wakeup.wait()
                    continue
                message = watcher.pending.popleft()
                if last is not None and message.prev != last:
                    # Pub/sub delivers at most once: a broken chain means a lost change; start again.
                    watcher.request_resync()
                    continue
                last = message.version
                yield message
        finally:
            self._leave(event_id, watcher)

    def watcher_count(self, event_id: int) -> int:
        return len(self._watchers.get(event_id, ()))

    def subscribed_events(self) -> set[int]:
        return set(self._subscriptions)

    # --- subscriptions ------------------------------------------------------------------------------------------

    async def _join(self, event_id: int, watcher: _Watcher) -> None:
        self._watchers.setdefault(event_id, set()).add(watcher)
        SEAT_WATCHERS.inc()
        try:
            if event_id not in self._subscriptions:
                await self._sync_subscription(event_id)
            confirmed = self._subscriptions[event_id]
            await asyncio.wait_for(asyncio.shield(confirmed), _SUBSCRIBE_TIMEOUT_SECONDS)
        except (RedisError, OSError, TimeoutError, KeyError) as exc:
            log.warning("seat_feed_subscribe_failed", event_id=event_id, error=repr(exc))
            raise Unavailable("SEAT_FEED_UNAVAILABLE", "live seat updates are unavailable, retry shortly") from exc

    def _leave(self, event_id: int, watcher: _Watcher) -> None:
        watchers = self._watchers.get(event_id)
        if watchers is None or watcher not in watchers:
            return
        watchers.discard(watcher)
        SEAT_WATCHERS.dec()
        if watchers:
            return
        del self._watchers[event_id]
        # Not awaited here: this runs while a cancelled stream unwinds.
        task = asyncio.create_task(self._sync_subscription(event_id), name=f"seat-hub-unsubscribe-{event_id}")
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("seat_feed_unsubscribe_failed", task=task.get_name(), error=repr(task.exception()))

    async def _sync_subscription(self, event_id: int) -> None:
        """Make the subscription match whether the event has watchers; serialised so that an UNSUBSCRIBE sent for
        the last leaver can never overtake the SUBSCRIBE of a watcher that arrived just after."""
        async with self._commands:
            wanted = event_id in self._watchers
            channel = seatfeed.channel(event_id)
            if wanted and event_id not in self._subscriptions:
                confirmed = asyncio.get_running_loop().create_future()
                self._subscriptions[event_id] = confirmed
                self._unconfirmed.setdefault(channel, deque()).append(confirmed)
                try:
                    await self._pubsub.subscribe(channel)
                except BaseException:
                    del self._subscriptions[event_id]
                    self._unconfirmed[channel].remove(confirmed)
                    raise
                self._connected.set()
                SEAT_FEED_SUBSCRIPTIONS.inc()
            elif not wanted and event_id in self._subscriptions:
                del self._subscriptions[event_id]
                SEAT_FEED_SUBSCRIPTIONS.dec()
                await self._pubsub.unsubscribe(channel)

    # --- the reader ---------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Read the pub/sub connection until cancelled and hand every change to the watchers of its event."""
        await self._connected.wait()
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the feed must survive Redis restarts
                log.warning("seat_feed_read_failed", error=repr(exc))
                self._resync_everyone()
                await asyncio.sleep(0.5)
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel: str = message.get("channel") or ""
        if kind == "message":
            event_id = _event_of(channel)
            watchers = self._watchers.get(event_id) if event_id is not None else None
            if not watchers:
                return
            try:
                feed = seatfeed.SeatFeedMessage.from_json(message["data"])
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("seat_feed_message_malformed", channel=channel, error=repr(exc))
                return
            for watcher in tuple(watchers):
                watcher.offer(feed)
        elif kind == "subscribe":
            waiting = self._unconfirmed.get(channel)
            if waiting:
                confirmed = waiting.popleft()
                if not waiting:
                    del self._unconfirmed[channel]
                if not confirmed.done():
                    confirmed.set_result(None)
            else:
                # A re-subscription after a reconnect: changes may have been lost while disconnected.
                event_id = _event_of(channel)
                for watcher in tuple(self._watchers.get(event_id, ()) if event_id is not None else ()):
                    watcher.request_resync()

    def _resync_everyone(self) -> None:
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.request_resync()

    async def close(self) -> None:
        for task in tuple(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._pubsub.aclose()


def _event_of(channel: str | None) -> int | None:
    prefix = seatfeed.channel(0)[:-1]
    if not channel or not channel.startswith(prefix):
        return None
    suffix = channel[len(prefix):]
    return int(suffix) if suffix.isdigit() else None
