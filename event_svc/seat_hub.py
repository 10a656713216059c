"""Fan-out of the live seat feed to seat watchers: gRPC ``WatchSeats`` streams and the HTTP bridge's SSE and NDJSON
streams.

One Redis pub/sub connection per process, and on it one subscription per event that has watchers here: the first
watcher of an event subscribes, the last one to leave unsubscribes. Each publication is parsed once per process and
checked against the chain of the event's feed (each names the one before it, see ``tix.seatfeed``): a gap (pub/sub
delivers at most once; a reconnect loses what was published meanwhile) is repaired from the event's log in Redis,
and only when the log no longer reaches back do the watchers start again from a snapshot. The process keeps the
event's recent publications, so a reconnecting watcher that names the last version it saw (``since_version``, or
SSE's ``Last-Event-ID``) is sent what it missed, from memory or from the log, instead of the whole map.

Changes reach watchers in batches: the reader takes everything that has arrived before writing to anyone, and
writes to an event's watchers at most once per ``batch_seconds`` (changes closer together wait for the interval and
go together), so a busy sale costs each watcher a few writes a second however many seats change, and a hub that fell
behind catches up in one write per watcher rather than one per change.

Watchers never slow each other down: a gRPC watcher has a bounded buffer and starts again from a snapshot when it
overflows; an HTTP watcher that is caught up is written to directly, with each batch's frames rendered once for
everyone, and is dropped with a reason (it resumes when it reconnects) when its connection holds more unsent bytes
than allowed. Quiet streams get a heartbeat. Snapshots for watchers arriving together share one database read (see
``EventViewing.snapshot``), so a burst of new streams costs a few queries, and a change costs none.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from event_svc.domain import EventViewing, MapSnapshot
from tix import seatfeed
from tix.errors import Unavailable
from tix.logs import get_logger
from tix.singleflight import SingleFlight

log = get_logger("event_svc.seat_hub")

SEAT_WATCHERS = Gauge("tix_seat_watchers", "Seat watches open (gRPC and HTTP).", multiprocess_mode="livesum")
SEAT_FEED_SUBSCRIPTIONS = Gauge(
    "tix_seat_feed_subscriptions", "Events this process subscribes to on the seat feed.", multiprocess_mode="livesum"
)
SEAT_WATCH_STARTS = Counter(
    "tix_seat_watch_starts_total", "How seat watches started: from a snapshot, or resumed from memory or the log.",
    ["start"],
)
SEAT_FEED_REPAIRS = Counter(
    "tix_seat_feed_repairs_total", "Gaps in an event's feed, by how they were mended.", ["outcome"]
)

# How long a new watcher waits for Redis to confirm its event's subscription (generous: in a reconnect storm the
# confirmation queues behind thousands of arriving streams).
_SUBSCRIBE_TIMEOUT_SECONDS = 15.0
# Log entries read when a watcher resumes: a few first (a storm of reconnects shares each read), more if needed.
_TAIL_READS = (64, 1024, seatfeed.LOG_LENGTH * 2)


class Heartbeat(NamedTuple):
    """Nothing changed for a while; ``position`` is the last version the watcher was sent."""

    position: int | None


@dataclass(eq=False)
class FeedItem:
    """A publication as the hub passes it on, with the bytes each HTTP format renders it to (once, for all)."""

    message: seatfeed.SeatFeedMessage
    frames: dict[Any, bytes] = field(default_factory=dict)
    # When this process received it (monotonic seconds).
    received: float = field(default_factory=time.monotonic)

    @property
    def version(self) -> int:
        return self.message.version

    @property
    def prev(self) -> int:
        return self.message.prev


@dataclass(eq=False)
class FeedBatch:
    """Publications of one event passed on together, each naming the one before it: what arrived while the hub was
    busy (or within its batching interval) goes to a caught-up HTTP watcher as one write of bytes rendered once per
    format for all of them."""

    items: tuple[FeedItem, ...]
    frames: dict[Any, bytes] = field(default_factory=dict)

    @property
    def prev(self) -> int:
        return self.items[0].prev

    @property
    def version(self) -> int:
        return self.items[-1].version

    @property
    def received(self) -> float:
        return self.items[-1].received


def chained_batches(items: list[FeedItem]) -> list[FeedBatch]:
    """``items`` in runs where each names the one before it (a run breaks where the feed started again)."""
    batches: list[FeedBatch] = []
    run: list[FeedItem] = []
    for item in items:
        if run and item.prev != run[-1].version:
            batches.append(FeedBatch(tuple(run)))
            run = []
        run.append(item)
    if run:
        batches.append(FeedBatch(tuple(run)))
    return batches


@dataclass(frozen=True)
class _Tail:
    began: int  # the mark taken as the read started
    feed: seatfeed.FeedTail
    items: tuple[FeedItem, ...]


class Sink(Protocol):
    """A watcher as the hub sees it."""

    def offer(self, item: FeedItem) -> None: ...
    def offer_batch(self, batch: FeedBatch) -> None: ...
    def request_resync(self) -> None: ...


class _EventFeed:
    """One watched event in this process: its watchers, the last publication passed on, the recent ones."""

    __slots__ = ("event_id", "flush_timer", "held", "last", "last_flush", "linger_timer", "outbox", "recent", "sinks")

    def __init__(self, event_id: int, recent_size: int) -> None:
        self.event_id = event_id
        self.sinks: set[Sink] = set()
        # Publications passed on (in ``recent``, ``last``) but not yet offered to the watchers: they go out together.
        self.outbox: list[FeedItem] = []
        self.last_flush = 0.0  # monotonic seconds
        self.flush_timer: asyncio.TimerHandle | None = None
        # Set while nobody watches: when it fires, the event is forgotten.
        self.linger_timer: asyncio.TimerHandle | None = None
        # The version of the last publication passed on (None: unknown, nothing to check the next one against).
        self.last: int | None = None
        self.recent: deque[FeedItem] = deque(maxlen=recent_size)
        # Publications held while a gap is mended from the log (None: no repair in progress).
        self.held: list[FeedItem] | None = None


class _Watcher:
    """One gRPC stream's buffer of changes not yet sent."""

    __slots__ = ("limit", "pending", "resync", "wakeup")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending: deque[FeedItem] = deque()
        self.wakeup = asyncio.Event()
        # Set when buffered changes were dropped: the stream must start again from a fresh snapshot.
        self.resync = False

    def offer(self, item: FeedItem) -> None:
        if self.resync:
            return  # the coming snapshot is read after this change, so it includes it
        if len(self.pending) >= self.limit:
            self.request_resync()
            return
        self.pending.append(item)
        self.wakeup.set()

    def offer_batch(self, batch: FeedBatch) -> None:
        for item in batch.items:
            self.offer(item)

    def request_resync(self) -> None:
        self.pending.clear()
        self.resync = True
        self.wakeup.set()


class SeatHub:
    def __init__(
        self,
        redis: Redis,
        viewing: EventViewing,
        *,
        watcher_queue_size: int,
        recent_size: int = 2048,
        heartbeat_seconds: float = 10.0,
        batch_seconds: float = 0.0,
        linger_seconds: float = 0.0,
        on_publication: Callable[[int, int], None] | None = None,
    ) -> None:
        self._redis = redis
        self._viewing = viewing
        self._queue_size = watcher_queue_size
        self._recent_size = recent_size
        self.heartbeat_seconds = heartbeat_seconds
        # An event's watchers are written to at most once per this many seconds (0: as soon as the reader is free).
        self._batch_seconds = batch_seconds
        # How long an event stays subscribed (and its recent publications kept) after its last watcher left.
        self._linger_seconds = linger_seconds
        # Events with publications in their outbox.
        self._dirty: set[_EventFeed] = set()
        self._on_publication = on_publication
        self._pubsub = redis.pubsub()
        self._feeds: dict[int, _EventFeed] = {}
        # Events whose SUBSCRIBE has been sent (and no UNSUBSCRIBE since), with the future its confirmation sets.
        self._subscriptions: dict[int, asyncio.Future] = {}
        # Confirmations not yet received, per channel, in the order the SUBSCRIBEs were sent.
        self._unconfirmed: dict[str, deque[asyncio.Future]] = {}
        self._commands = asyncio.Lock()
        self._connected = asyncio.Event()
        self._background: set[asyncio.Task] = set()
        self._tails: SingleFlight[tuple[int, int], _Tail] = SingleFlight()
        self._tail_cache: dict[tuple[int, int], _Tail] = {}

    # --- what the servicers use ---------------------------------------------------------------------------------

    async def watch(
        self, event_id: int, *, since: int | None = None
    ) -> AsyncIterator[MapSnapshot | seatfeed.SeatFeedMessage | Heartbeat]:
        """The changes after ``since`` (or a snapshot, then every change after it); another snapshot whenever the
        stream fell behind; a heartbeat after ``heartbeat_seconds`` without anything to send."""
        await self._viewing.catalog_entry(event_id)  # unknown events fail before subscribing to anything
        watcher = _Watcher(self._queue_size)
        try:
            await self.join(event_id, watcher)
            # The last publication passed on; None right after a snapshot, whatever came before it.
            last: int | None = None
            # Versions the replay sent: the hub may offer them again (a resume from the log runs ahead of pub/sub).
            sent: set[int] = set()
            replay = await self.resume(event_id, since) if since is not None else None
            if replay is not None:
                SEAT_WATCH_STARTS.labels("resumed").inc()
                sent = {item.version for item in replay}
                for item in replay:
                    last = item.version
                    yield item.message
                watcher.pending = deque(item for item in watcher.pending if item.version not in sent)
            else:
                SEAT_WATCH_STARTS.labels("snapshot").inc()
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
                    try:
                        await asyncio.wait_for(watcher.wakeup.wait(), self.heartbeat_seconds)
                    except TimeoutError:
                        yield Heartbeat(last)
                    continue
                item = watcher.pending.popleft()
                if sent:
                    if item.version in sent:
                        continue
                    sent = set()  # publications come in order: nothing replayed follows a new one
                if last is not None and item.prev != last:
                    # A broken chain: a change this stream did not get; start again.
                    watcher.request_resync()
                    continue
                last = item.version
                yield item.message
        finally:
            self.leave(event_id, watcher)

    async def join(self, event_id: int, sink: Sink) -> None:
        """Add a watcher to the event's feed: from now on it is offered every publication, in order."""
        feed = self._feeds.get(event_id)
        if feed is None:
            feed = self._feeds[event_id] = _EventFeed(event_id, self._recent_size)
        feed.sinks.add(sink)
        if feed.linger_timer is not None:
            feed.linger_timer.cancel()
            feed.linger_timer = None
        SEAT_WATCHERS.inc()
        try:
            if event_id not in self._subscriptions:
                await self._sync_subscription(event_id)
            confirmed = self._subscriptions[event_id]
            if not confirmed.done():
                await asyncio.wait_for(asyncio.shield(confirmed), _SUBSCRIBE_TIMEOUT_SECONDS)
        except (RedisError, OSError, TimeoutError, KeyError) as exc:
            self.leave(event_id, sink)
            log.warning("seat_feed_subscribe_failed", event_id=event_id, error=repr(exc))
            raise Unavailable("SEAT_FEED_UNAVAILABLE", "live seat updates are unavailable, retry shortly") from exc

    def leave(self, event_id: int, sink: Sink) -> None:
        feed = self._feeds.get(event_id)
        if feed is None or sink not in feed.sinks:
            return
        feed.sinks.discard(sink)
        SEAT_WATCHERS.dec()
        if feed.sinks:
            return
        if self._linger_seconds > 0:
            # Kept (subscribed, its recent publications growing) for a while: watchers that all lost their
            # connections at once come back to it and resume from memory, without reading the log.
            if feed.linger_timer is None:
                feed.linger_timer = asyncio.get_running_loop().call_later(self._linger_seconds, self._forget, feed)
            return
        self._forget(feed)

    def _forget(self, feed: _EventFeed) -> None:
        """Drop an event nobody watches and unsubscribe from its feed."""
        if feed.sinks or self._feeds.get(feed.event_id) is not feed:
            return
        del self._feeds[feed.event_id]
        self._dirty.discard(feed)
        for timer in (feed.flush_timer, feed.linger_timer):
            if timer is not None:
                timer.cancel()
        # Not awaited here: this runs while a cancelled stream unwinds.
        self._in_background(self._sync_subscription(feed.event_id), f"seat-hub-unsubscribe-{feed.event_id}")

    async def resume(self, event_id: int, position: int) -> list[FeedItem] | None:
        """The publications after ``position``, from this process's memory or the event's log (None: neither
        reaches back that far; the watcher needs a snapshot). Call after joining: what is published from then on
        is offered to the watcher too (take out what the replay already holds)."""
        joined = self._tails.mark()
        feed = self._feeds.get(event_id)
        if feed is not None and feed.outbox:
            # Offered first (the watcher buffers them), so what the replay below holds is offered no later.
            self._flush(feed)
        if feed is not None and feed.last is not None and feed.held is None:
            replay = _replay_from_memory(feed, position)
            if replay is not None:
                return replay
        for count in _TAIL_READS:
            try:
                tail = await self._tail(event_id, count, joined)
            except (RedisError, OSError) as error:
                log.warning("seat_feed_log_unavailable", event_id=event_id, error=repr(error))
                return None
            self._adopt(event_id, tail)
            messages = seatfeed.replay_after(tail.feed.entries, tail.feed.last, position)
            if messages is not None:
                # The same items (and so the same rendered frames) for every watcher resuming from this read.
                return list(tail.items[len(tail.items) - len(messages):]) if messages else []
            if tail.feed.complete:
                return None
        return None

    def _adopt(self, event_id: int, tail: _Tail) -> None:
        """A feed that has passed nothing on yet takes the log's tail as its recent publications, so the watchers
        resuming after this one (a reconnect storm) are served from memory. A publication the tail holds that
        pub/sub brings later is recognised as passed on (see _receive); one the tail missed mends from the log."""
        feed = self._feeds.get(event_id)
        if (feed is None or feed.last is not None or feed.recent or feed.held is not None or feed.outbox
                or not tail.items or tail.items[-1].version != tail.feed.last):
            return
        feed.recent.extend(tail.items)
        feed.last = tail.feed.last

    def feed_position(self, event_id: int) -> int | None:
        feed = self._feeds.get(event_id)
        return feed.last if feed is not None else None

    def watcher_count(self, event_id: int) -> int:
        feed = self._feeds.get(event_id)
        return len(feed.sinks) if feed is not None else 0

    def subscribed_events(self) -> set[int]:
        return set(self._subscriptions)

    # --- the log ------------------------------------------------------------------------------------------------

    async def _tail(self, event_id: int, count: int, joined: int) -> _Tail:
        """The log's newest entries, read after ``joined`` (a mark taken once the watcher was joined, so what the
        read misses is in its buffer); a storm of reconnecting watchers shares each read."""
        key = (event_id, count)
        cached = self._tail_cache.get(key)
        if cached is not None and cached.began > joined:
            return cached

        async def read() -> _Tail:
            began = self._tails.mark()
            feed = await seatfeed.read_tail(self._redis, event_id, count)
            tail = _Tail(began, feed, tuple(FeedItem(message) for message in feed.entries))
            self._tail_cache[key] = tail
            if len(self._tail_cache) > 1024:
                self._tail_cache.clear()
            return tail

        return await self._tails.run(key, read, not_before=joined)

    # --- subscriptions ------------------------------------------------------------------------------------------

    def _in_background(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("seat_hub_task_failed", task=task.get_name(), error=repr(task.exception()))

    async def _sync_subscription(self, event_id: int) -> None:
        """Make the subscription match whether the event has watchers; serialised so that an UNSUBSCRIBE sent for
        the last leaver can never overtake the SUBSCRIBE of a watcher that arrived just after."""
        async with self._commands:
            wanted = event_id in self._feeds
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
                # The client subscribes again when it reconnects; each confirmation then mends that event's gap.
                log.warning("seat_feed_read_failed", error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            # Everything that has arrived meanwhile is read before anyone is written to, so a burst of changes (or
            # changes that queued while the last ones were written) reaches each watcher as one write.
            while message is not None:
                self._dispatch(message)
                try:
                    message = await self._pubsub.get_message(timeout=0)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - reported by the next blocking read
                    message = None
            self._flush_dirty()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel: str = message.get("channel") or ""
        if kind == "message":
            event_id = _event_of(channel)
            feed = self._feeds.get(event_id) if event_id is not None else None
            if feed is None:
                return
            try:
                parsed = seatfeed.SeatFeedMessage.from_json(message["data"])
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("seat_feed_message_malformed", channel=channel, error=repr(exc))
                return
            self._receive(feed, FeedItem(parsed))
        elif kind == "subscribe":
            waiting = self._unconfirmed.get(channel)
            if waiting:
                confirmed = waiting.popleft()
                if not waiting:
                    del self._unconfirmed[channel]
                if not confirmed.done():
                    confirmed.set_result(None)
            else:
                # A re-subscription after a reconnect: what was published meanwhile is missing; mend it.
                event_id = _event_of(channel)
                feed = self._feeds.get(event_id) if event_id is not None else None
                if feed is not None and feed.held is None:
                    feed.held = []
                    self._in_background(self._repair(feed), f"seat-feed-repair-{feed.event_id}")

    def _receive(self, feed: _EventFeed, item: FeedItem) -> None:
        if feed.held is not None:
            feed.held.append(item)
        elif feed.last is not None and item.prev != feed.last:
            if any(seen.version == item.version for seen in feed.recent):
                return  # passed on already (the feed took it from the log before pub/sub brought it)
            feed.held = [item]
            self._in_background(self._repair(feed), f"seat-feed-repair-{feed.event_id}")
        else:
            self._deliver(feed, item)

    def _deliver(self, feed: _EventFeed, item: FeedItem) -> None:
        feed.last = item.version
        feed.recent.append(item)
        if self._on_publication is not None:
            self._on_publication(feed.event_id, item.version)
        feed.outbox.append(item)
        self._dirty.add(feed)

    def _flush_dirty(self) -> None:
        """Offer every event's outbox to its watchers, or schedule it for when the event's interval is over."""
        if not self._dirty:
            return
        now = time.monotonic()
        for feed in tuple(self._dirty):
            due = feed.last_flush + self._batch_seconds
            if now >= due:
                self._flush(feed)
            elif feed.flush_timer is None:
                feed.flush_timer = asyncio.get_running_loop().call_later(due - now, self._flush, feed)

    def _flush(self, feed: _EventFeed) -> None:
        if feed.flush_timer is not None:
            feed.flush_timer.cancel()
            feed.flush_timer = None
        self._dirty.discard(feed)
        items, feed.outbox = feed.outbox, []
        feed.last_flush = time.monotonic()
        if not items:
            return
        sinks = tuple(feed.sinks)
        # The hot path: once per batch and watcher (an HTTP watcher that is caught up writes the batch's shared bytes).
        for batch in chained_batches(items):
            for sink in sinks:
                sink.offer_batch(batch)

    async def _repair(self, feed: _EventFeed) -> None:
        """Pass on what the log holds after the last publication passed on, then what arrived meanwhile; when the
        log does not reach back, every watcher of the event starts again from a snapshot."""
        missing: list[FeedItem] | None = None
        if feed.last is not None:
            try:
                tail = await seatfeed.read_tail(self._redis, feed.event_id, seatfeed.LOG_LENGTH * 2)
            except (RedisError, OSError) as error:
                log.warning("seat_feed_log_unavailable", event_id=feed.event_id, error=repr(error))
            else:
                found = seatfeed.replay_after(tail.entries, tail.last, feed.last)
                missing = [FeedItem(m) for m in found] if found is not None else None
        held, feed.held = feed.held or [], None
        if feed.outbox:
            self._flush(feed)
        if missing is None:
            SEAT_FEED_REPAIRS.labels("resync").inc()
            feed.last = None
            feed.recent.clear()
            for sink in tuple(feed.sinks):
                sink.request_resync()
            for item in held:
                self._receive(feed, item)
            self._flush_dirty()
            return
        SEAT_FEED_REPAIRS.labels("log").inc()
        delivered = set()
        for item in missing:
            delivered.add(item.version)
            self._deliver(feed, item)
        for item in held:
            if item.version not in delivered:
                self._receive(feed, item)
        self._flush_dirty()

    async def close(self) -> None:
        for feed in self._feeds.values():
            for timer in (feed.flush_timer, feed.linger_timer):
                if timer is not None:
                    timer.cancel()
        for task in tuple(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._pubsub.aclose()


def _replay_from_memory(feed: _EventFeed, position: int) -> list[FeedItem] | None:
    """The feed's recent publications after ``position`` (as ``seatfeed.replay_after``), searched from the newest:
    a storm of watchers resuming after a short gap each walks back only over what it missed."""
    if position == feed.last:
        return []
    missed: list[FeedItem] = []
    for item in reversed(feed.recent):
        missed.append(item)
        if item.prev == position:
            missed.reverse()
            return missed
    return None


def _event_of(channel: str | None) -> int | None:
    prefix = seatfeed.channel(0)[:-1]
    if not channel or not channel.startswith(prefix):
        return None
    suffix = channel[len(prefix):]
    return int(suffix) if suffix.isdigit() else None
