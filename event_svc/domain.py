"""Viewing events: what an event page shows (details, sale status, availability) and the seat map.

Rules only: the stores are reached through the ports below (implemented in ``repository.py``), and gRPC never
appears here. The static part of an event (catalog rows, sections, prices) is cached for long; what changes with
every sale (taken seats) is read fresh, or shared by concurrent viewers for at most a second.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol

from cachetools import LRUCache

from tix import sales
from tix.availability import AvailabilityBand, AvailabilityCounts, availability_band
from tix.catalog import LayoutSeat, Performer, Venue
from tix.errors import InvalidArgument, NotFound
from tix.sales import SaleStatus, SaleWindow
from tix.singleflight import SingleFlight


class SeatStatus(enum.Enum):
    AVAILABLE = "available"
    RESERVED = "reserved"
    BOOKED = "booked"


# One character per seat in the compact seat map (see tix.v1.SeatRow.status_codes).
STATUS_CODES = {SeatStatus.AVAILABLE: "A", SeatStatus.RESERVED: "R", SeatStatus.BOOKED: "B"}


@dataclass(frozen=True)
class WaitingRoom:
    enabled: bool
    admission_rate_per_second: int
    max_active_shoppers: int


@dataclass(frozen=True)
class SectionPrice:
    """A section of the layout with the cheapest price its seats sell at ("from $X") and its size."""

    section_id: str
    name: str
    price_tier: int
    price_minor: int
    max_price_minor: int
    total_count: int


@dataclass(frozen=True)
class EventCatalogEntry:
    """The part of an event that changes only when the catalog changes: cached for long."""

    event_id: int
    name: str
    description: str
    category: int
    starts_at: datetime
    ends_at: datetime
    sale_starts_at: datetime
    sale_ends_at: datetime | None
    cancelled: bool
    currency: str
    tier_prices: tuple[int, ...]
    max_seats_per_user: int
    waiting_room: WaitingRoom
    venue: Venue
    performer: Performer
    sections: tuple[SectionPrice, ...]

    def price_of_tier(self, tier: int) -> int:
        """Tier N costs tier_prices[N]; tiers beyond the list cost the last price (as ticket materialisation does)."""
        return self.tier_prices[max(1, min(tier, len(self.tier_prices))) - 1]

    def section(self, section_id: str) -> SectionPrice | None:
        return next((s for s in self.sections if s.section_id == section_id), None)

    @property
    def total_count(self) -> int:
        return sum(s.total_count for s in self.sections)

    @property
    def min_price_minor(self) -> int:
        return min((s.price_minor for s in self.sections), default=0)

    @property
    def max_price_minor(self) -> int:
        return max((s.max_price_minor for s in self.sections), default=0)


def sale_status(entry: EventCatalogEntry, available_count: int, now: datetime) -> SaleStatus:
    window = SaleWindow(entry.starts_at, entry.sale_starts_at, entry.sale_ends_at, entry.cancelled)
    return sales.sale_status(window, now, sold_out=available_count <= 0)


@dataclass(frozen=True)
class SectionAvailability:
    section: SectionPrice
    available_count: int


@dataclass(frozen=True)
class EventPage:
    """Everything GetEvent returns."""

    entry: EventCatalogEntry
    sale_status: SaleStatus
    sections: tuple[SectionAvailability, ...]
    band: AvailabilityBand

    @property
    def available_count(self) -> int:
        return sum(s.available_count for s in self.sections)

    def valid_until(self, now: datetime) -> datetime | None:
        """The next moment the page changes by itself (a sale opens or closes, the event starts): a cached page
        must not outlive it. None: never by the clock alone."""
        entry = self.entry
        moments = (entry.sale_starts_at, entry.sale_ends_at, entry.starts_at)
        return min((moment for moment in moments if moment is not None and moment > now), default=None)


# --- seat layouts ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutRow:
    row_label: str
    first_seat_number: int
    seat_ids: tuple[str, ...]
    numbers: tuple[int, ...]
    price_tiers: tuple[int, ...]
    xs: tuple[float, ...]
    ys: tuple[float, ...]

    @property
    def size(self) -> int:
        return len(self.seat_ids)


@dataclass(frozen=True)
class LayoutSection:
    section_id: str
    name: str
    rows: tuple[LayoutRow, ...]

    @property
    def size(self) -> int:
        return sum(row.size for row in self.rows)


@dataclass(frozen=True, eq=False)
class SeatLayout:
    """A venue's seat plan in drawing order, with every seat's place in it for overlaying seat statuses."""

    layout_id: str
    sections: tuple[LayoutSection, ...]
    # seat_id -> (section index, row index, position in the row)
    positions: Mapping[str, tuple[int, int, int]]
    name: str = ""

    @property
    def capacity(self) -> int:
        return len(self.positions)


def natural_key(label: str) -> tuple:
    """Orders "A" < "B" < "AA" and "2" < "10", as rows and sections are numbered on a plan."""
    return (len(label), *tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", label)))


def build_layout(layout_id: str, seats: Sequence[LayoutSeat], name: str = "") -> SeatLayout:
    """Group seats into sections and rows; rows and seats are ordered as a fan reads the plan."""
    by_section: dict[str, tuple[str, dict[str, list[LayoutSeat]]]] = {}
    for seat in seats:
        name, rows = by_section.setdefault(seat.section_id, (seat.section_name, {}))
        rows.setdefault(seat.row_label, []).append(seat)
    sections: list[LayoutSection] = []
    positions: dict[str, tuple[int, int, int]] = {}
    for section_index, section_id in enumerate(sorted(by_section, key=natural_key)):
        name, rows = by_section[section_id]
        layout_rows = []
        for row_index, label in enumerate(sorted(rows, key=natural_key)):
            row_seats = sorted(rows[label], key=lambda s: s.number)
            for position, seat in enumerate(row_seats):
                positions[seat.seat_id] = (section_index, row_index, position)
            layout_rows.append(
                LayoutRow(
                    row_label=label,
                    first_seat_number=row_seats[0].number,
                    seat_ids=tuple(s.seat_id for s in row_seats),
                    numbers=tuple(s.number for s in row_seats),
                    price_tiers=tuple(s.price_tier for s in row_seats),
                    xs=tuple(s.x for s in row_seats),
                    ys=tuple(s.y for s in row_seats),
                )
            )
        sections.append(LayoutSection(section_id, name, tuple(layout_rows)))
    return SeatLayout(layout_id, tuple(sections), positions, name)


# --- seat maps -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SeatState:
    """The seats of an event that are not available, and the seat-map version they were read at (tix.seatfeed)."""

    event_id: int
    version: int
    taken: Mapping[str, SeatStatus]


class SeatView(NamedTuple):
    """One seat in the full view (a tuple: a stadium's full map builds tens of thousands of them)."""

    seat_id: str
    section_id: str
    row_label: str
    number: int
    status: SeatStatus
    price_minor: int
    x: float
    y: float


@dataclass(frozen=True)
class SeatMapRow:
    row_label: str
    first_seat_number: int
    status_codes: str
    seats: tuple[SeatView, ...] = ()


@dataclass(frozen=True)
class SeatMapSection:
    section: SectionPrice
    available_count: int
    rows: tuple[SeatMapRow, ...]


@dataclass(frozen=True, eq=False)
class SeatMap:
    event_id: int
    version: int
    currency: str
    sections: tuple[SeatMapSection, ...]
    # Full view: the token of the next page of sections ("" on the last page, and always in the compact view).
    next_page_token: str = ""


@dataclass(frozen=True, eq=False)
class MapSnapshot:
    """A seat map with its place in the event's feed: every publication up to ``position`` (the head observed
    before the map was read) is in it, so a watcher goes on with the publications after it. None: unknown (the
    feed's store did not answer)."""

    seat_map: SeatMap
    position: int | None


@dataclass(frozen=True, eq=False)
class SeatMapSource:
    """A seat map's ingredients, read; :meth:`build` overlays them (pure, no I/O)."""

    entry: EventCatalogEntry
    layout: SeatLayout
    state: SeatState
    section_id: str | None
    view: SeatMapView
    page: FullViewPage | None

    def build(self) -> SeatMap:
        page = self.page
        return build_seat_map(
            self.entry, self.layout, self.state, section_id=self.section_id, view=self.view,
            section_indexes=page.section_indexes if page else None,
            next_page_token=page.next_page_token if page else "",
        )


@dataclass(frozen=True)
class EventClock:
    """What says whether a cached map or page is still current: the event's last seat-feed publication (its
    head) and its catalog's version. A map or page is keyed by the clock observed *before* reading it."""

    head: int
    catalog: str


@dataclass(frozen=True)
class FullViewPage:
    """Which sections a page of the full view holds, and the token of the next page."""

    section_indexes: tuple[int, ...]
    next_page_token: str


# The full view pages by whole sections; a client may ask for fewer per page, never for more than this.
MAX_SECTIONS_PER_PAGE = 1_000
_PAGE_TOKEN_PREFIX = "fv1"


def encode_page_token(layout_id: str, section_index: int) -> str:
    raw = f"{_PAGE_TOKEN_PREFIX}:{layout_id}:{section_index}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, layout_id: str) -> int:
    """The section a page starts at; an opaque token from another layout, or garbage, is INVALID_ARGUMENT."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, token_layout, index = raw.rsplit(":", 2)
        start = int(index)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument("page_token", "not a page token of this seat map", "INVALID_PAGE_TOKEN") from None
    if prefix != _PAGE_TOKEN_PREFIX or token_layout != layout_id or start < 0:
        raise InvalidArgument("page_token", "not a page token of this seat map", "INVALID_PAGE_TOKEN")
    return start


def full_view_page(
    layout: SeatLayout, *, section_id: str | None, page_size: int, page_token: str, max_seats: int
) -> FullViewPage:
    """The sections one answer of the full view carries: one named section, or whole sections from the page
    token's on, as many as ``page_size`` allows and as fit in ``max_seats`` (at least one). A section larger than
    ``max_seats`` cannot be answered in the full view: INVALID_ARGUMENT that says so."""
    if page_size < 0:
        raise InvalidArgument("page_size", "must not be negative")
    sections = layout.sections
    if section_id is not None:
        wanted: tuple[int, ...] = tuple(i for i, s in enumerate(sections) if s.section_id == section_id)
    else:
        start = decode_page_token(page_token, layout.layout_id) if page_token else 0
        if start >= len(sections) and (start or sections):
            raise InvalidArgument("page_token", "not a page token of this seat map", "INVALID_PAGE_TOKEN")
        limit = min(page_size or MAX_SECTIONS_PER_PAGE, MAX_SECTIONS_PER_PAGE)
        chosen: list[int] = []
        seats = 0
        for index in range(start, len(sections)):
            size = sections[index].size
            if chosen and (len(chosen) >= limit or seats + size > max_seats):
                break
            chosen.append(index)
            seats += size
        wanted = tuple(chosen)
    for index in wanted:
        section = sections[index]
        if section.size > max_seats:
            raise InvalidArgument(
                "section_id" if section_id is not None else "view",
                f"section {section.section_id} has {section.size} seats, more than the {max_seats} one answer of "
                "the full view carries: use the compact view (status codes per row) with the layout's geometry",
                "SEAT_MAP_TOO_LARGE",
                section_id=section.section_id,
            )
    following = (wanted[-1] + 1) if wanted and section_id is None else len(sections)
    next_token = encode_page_token(layout.layout_id, following) if following < len(sections) else ""
    return FullViewPage(wanted, next_token)


class SeatMapView(enum.Enum):
    COMPACT = "compact"
    FULL = "full"


def build_seat_map(
    entry: EventCatalogEntry,
    layout: SeatLayout,
    state: SeatState,
    *,
    section_id: str | None = None,
    view: SeatMapView = SeatMapView.COMPACT,
    section_indexes: Collection[int] | None = None,
    next_page_token: str = "",
) -> SeatMap:
    """Overlay the taken seats on the layout: rows with nothing taken cost one string multiplication. Only the
    section named, or the sections at ``section_indexes`` (a page of the full view), when given."""
    taken_by_row: dict[tuple[int, int], list[tuple[int, str]]] = {}
    positions = layout.positions
    for seat_id, status in state.taken.items():
        place = positions.get(seat_id)
        if place is not None:
            taken_by_row.setdefault((place[0], place[1]), []).append((place[2], STATUS_CODES[status]))

    full = view is SeatMapView.FULL
    sections = []
    for section_index, layout_section in enumerate(layout.sections):
        if section_id is not None and layout_section.section_id != section_id:
            continue
        if section_indexes is not None and section_index not in section_indexes:
            continue
        price = entry.section(layout_section.section_id) or SectionPrice(
            layout_section.section_id, layout_section.name, 1, entry.price_of_tier(1), entry.price_of_tier(1),
            layout_section.size,
        )
        available = 0
        rows = []
        for row_index, row in enumerate(layout_section.rows):
            overlay = taken_by_row.get((section_index, row_index))
            if overlay is None:
                codes = "A" * row.size
                available += row.size
            else:
                chars = ["A"] * row.size
                for position, code in overlay:
                    chars[position] = code
                codes = "".join(chars)
                available += row.size - len(overlay)
            seats = _seat_views(entry, layout_section.section_id, row, codes) if full else ()
            rows.append(SeatMapRow(row.row_label, row.first_seat_number, codes, seats))
        sections.append(SeatMapSection(price, available, tuple(rows)))
    return SeatMap(state.event_id, state.version, entry.currency, tuple(sections), next_page_token)


_STATUS_OF_CODE = {code: status for status, code in STATUS_CODES.items()}


def _seat_views(entry: EventCatalogEntry, section_id: str, row: LayoutRow, codes: str) -> tuple[SeatView, ...]:
    label, price_of_tier, status_of = row.row_label, entry.price_of_tier, _STATUS_OF_CODE
    return tuple(
        SeatView(seat_id, section_id, label, number, status_of[code], price_of_tier(tier), x, y)
        for seat_id, number, code, tier, x, y in zip(
            row.seat_ids, row.numbers, codes, row.price_tiers, row.xs, row.ys, strict=True
        )
    )


# --- ports -----------------------------------------------------------------------------------------------------


class CatalogStore(Protocol):
    async def load_event(self, event_id: int) -> EventCatalogEntry | None: ...
    async def load_layout(self, layout_id: str) -> list[LayoutSeat]: ...
    async def layout_ids(self) -> list[str]: ...
    async def seat_state(self, event_id: int) -> SeatState: ...
    async def layout_name(self, layout_id: str) -> str | None: ...


class CatalogCache(Protocol):
    async def get_event(self, event_id: int, load: Callable[[], Awaitable[EventCatalogEntry | None]]) -> (
        EventCatalogEntry | None
    ): ...


class FeedClock(Protocol):
    """The event's clock (feed head, catalog version) as the stores know it: ``observe`` asks them now,
    ``current`` may answer from a recent observation (see EventSettings.read_freshness_seconds). None: the store
    that keeps the clock did not answer."""

    async def observe(self, event_id: int) -> EventClock | None: ...
    async def current(self, event_id: int) -> EventClock | None: ...


class AvailabilityCounter(Protocol):
    """Taken seats per section, maintained as booking changes them (None: no such event)."""

    async def counts(self, event_id: int) -> AvailabilityCounts | None: ...


class LayoutCache:
    """Seat layouts in process memory: they are templates shared by many venues and never change once used."""

    def __init__(self, store: CatalogStore, size: int) -> None:
        self._store = store
        self._size = size
        self._layouts: LRUCache[str, SeatLayout] = LRUCache(maxsize=size)
        self._flights: SingleFlight[str, SeatLayout] = SingleFlight()

    async def get(self, layout_id: str) -> SeatLayout:
        layout = self._layouts.get(layout_id)
        if layout is not None:
            return layout
        return await self._flights.run(layout_id, lambda: self._load(layout_id))

    async def warm(self) -> None:
        """Load the layouts venues use before the first fan asks: a stadium's takes a second or two to build."""
        for layout_id in (await self._store.layout_ids())[: self._size]:
            await self.get(layout_id)

    async def _load(self, layout_id: str) -> SeatLayout:
        name = await self._store.layout_name(layout_id)
        if name is None:
            return build_layout(layout_id, ())  # unknown: empty, and not kept (ids are probed by crawlers)
        layout = build_layout(layout_id, await self._store.load_layout(layout_id), name)
        self._layouts[layout_id] = layout
        return layout


@dataclass
class EventViewing:
    """The event service's use cases: the event page, the seat map, the layout's geometry, and snapshots for
    watchers."""

    store: CatalogStore
    cache: CatalogCache
    availability: AvailabilityCounter
    layouts: LayoutCache
    clock: Callable[[], datetime]
    # The feed's clock, to place snapshots in the feed; without it their position is unknown.
    clocks: FeedClock | None = None
    full_view_max_seats: int = 5_000
    _catalog_flights: SingleFlight[int, EventCatalogEntry | None] = field(default_factory=SingleFlight)
    _count_flights: SingleFlight[int, AvailabilityCounts | None] = field(default_factory=SingleFlight)
    _seat_flights: SingleFlight[int, SeatState] = field(default_factory=SingleFlight)
    _snapshot_flights: SingleFlight[int, MapSnapshot] = field(default_factory=SingleFlight)

    async def catalog_entry(self, event_id: int) -> EventCatalogEntry:
        # Shared by concurrent callers: a burst of viewers makes one cache lookup, not one each.
        entry = await self._catalog_flights.run(
            event_id, lambda: self.cache.get_event(event_id, lambda: self.store.load_event(event_id))
        )
        if entry is None:
            raise NotFound("EVENT_NOT_FOUND", f"event {event_id} does not exist", event_id=event_id)
        return entry

    async def event_page(self, event_id: int) -> EventPage:
        entry = await self.catalog_entry(event_id)
        counts = await self._count_flights.run(event_id, lambda: self.availability.counts(event_id))
        taken = counts.taken_by_section if counts is not None else {}
        sections = tuple(
            SectionAvailability(section, max(0, section.total_count - taken.get(section.section_id, 0)))
            for section in entry.sections
        )
        available = sum(s.available_count for s in sections)
        return EventPage(
            entry, sale_status(entry, available, self.clock()), sections,
            availability_band(available, entry.total_count),
        )

    async def seat_map(
        self,
        event_id: int,
        *,
        section_id: str | None = None,
        view: SeatMapView = SeatMapView.COMPACT,
        page_size: int = 0,
        page_token: str = "",
        not_before: int | None = None,
    ) -> SeatMap:
        """The map (a page of it in the full view). Concurrent readers share the read in progress, or with
        ``not_before`` (a :meth:`mark`) only a read that starts after it."""
        source = await self.seat_map_source(
            event_id, section_id=section_id, view=view, page_size=page_size, page_token=page_token,
            not_before=not_before,
        )
        return source.build()

    async def seat_map_source(
        self,
        event_id: int,
        *,
        section_id: str | None = None,
        view: SeatMapView = SeatMapView.COMPACT,
        page_size: int = 0,
        page_token: str = "",
        not_before: int | None = None,
    ) -> SeatMapSource:
        """What a map is built from, read from the stores; building it is pure CPU (a caller may do it off the
        event loop)."""
        entry = await self.catalog_entry(event_id)
        if section_id is not None and entry.section(section_id) is None:
            raise NotFound(
                "SECTION_NOT_FOUND", f"event {event_id} has no section {section_id!r}",
                event_id=event_id, section_id=section_id,
            )
        layout = await self.layouts.get(entry.venue.layout_id)
        page = None
        if view is SeatMapView.FULL:
            page = full_view_page(
                layout, section_id=section_id, page_size=page_size, page_token=page_token,
                max_seats=self.full_view_max_seats,
            )
        # Concurrent readers share one query: a stampede of seat-map viewers costs one read.
        state = await self._seat_flights.run(event_id, lambda: self._read_seat_state(event_id), not_before=not_before)
        return SeatMapSource(entry, layout, state, section_id, view, page)

    def mark_seats(self) -> int:
        """A point in time after which a seat-map read must start (see SingleFlight): take it after observing the
        event's clock, so the map read contains everything published up to that clock."""
        return self._seat_flights.mark()

    def mark(self) -> int:
        """A point in time after which a watcher's snapshot must have been read (see SingleFlight)."""
        return self._snapshot_flights.mark()

    async def snapshot(self, event_id: int, *, not_before: int) -> MapSnapshot:
        """The whole compact map for a watcher, with its position in the feed: built once per shared read,
        however many watchers share it."""
        entry = await self.catalog_entry(event_id)
        layout = await self.layouts.get(entry.venue.layout_id)

        async def build() -> MapSnapshot:
            clock = await self.clocks.observe(event_id) if self.clocks is not None else None
            seat_map = build_seat_map(entry, layout, await self._read_seat_state(event_id))
            return MapSnapshot(seat_map, clock.head if clock is not None else None)

        return await self._snapshot_flights.run(event_id, build, not_before=not_before)

    async def seat_layout(self, layout_id: str) -> SeatLayout:
        layout = await self.layouts.get(layout_id)
        if not layout.sections:
            raise NotFound("LAYOUT_NOT_FOUND", f"layout {layout_id!r} does not exist", layout_id=layout_id)
        return layout

    async def _read_seat_state(self, event_id: int) -> SeatState:
        return await self.store.seat_state(event_id)
