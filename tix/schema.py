"""The database schema, shared by the services (each reaches it only through its own repository).

Double booking is made impossible by the database itself, not just unlikely:
- ``tickets`` has exactly one row per (event, seat) (its primary key), so a seat has one status and one holder;
- CHECK constraints tie the status to the holder: available ⇔ no booking; reserved ⇒ a reservation deadline;
- reservations and confirmations are single conditional UPDATEs on those rows (see booking_svc.repository).

Seat layouts are templates shared by venues of one kind, so a million events need no 10^10 seat rows: an event's
tickets are materialised from its venue's layout when it is first booked or its seat map first read.
"""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    REAL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Sequence,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TICKET_STATUSES = ("available", "reserved", "booked")
BOOKING_STATUSES = ("reserved", "confirmed", "cancelled", "expired", "refunded")
PAYMENT_STATUSES = ("requires_payment", "processing", "succeeded", "failed", "canceled", "refunded")

layouts = Table(
    "layouts",
    metadata,
    Column("layout_id", String(40), primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("capacity", Integer, nullable=False),
    # Price multiplier per tier (tier 1 is the most expensive), applied to an event's base price.
    Column("tier_count", SmallInteger, nullable=False),
)

layout_seats = Table(
    "layout_seats",
    metadata,
    Column("layout_id", String(40), ForeignKey("layouts.layout_id", ondelete="CASCADE"), nullable=False),
    Column("seat_id", String(40), nullable=False),
    Column("section_id", String(20), nullable=False),
    Column("section_name", Text, nullable=False),
    Column("row_label", String(8), nullable=False),
    Column("number", SmallInteger, nullable=False),
    Column("price_tier", SmallInteger, nullable=False),
    # Drawing coordinates in metres from the stage's centre; also "closest to the stage" for best-available.
    Column("x", REAL, nullable=False),
    Column("y", REAL, nullable=False),
    # Rank within the layout: lower is better (closer to the stage), used by best-available.
    Column("rank", Integer, nullable=False),
    PrimaryKeyConstraint("layout_id", "seat_id"),
    Index("ix_layout_seats_section_row", "layout_id", "section_id", "row_label", "number"),
)

venues = Table(
    "venues",
    metadata,
    Column("venue_id", BigInteger, Identity(), primary_key=True),
    Column("name", Text, nullable=False),
    Column("city", Text, nullable=False),
    Column("region", Text, nullable=False, server_default=""),
    Column("country_code", String(2), nullable=False),
    Column("latitude", Double, nullable=False),
    Column("longitude", Double, nullable=False),
    Column("time_zone", Text, nullable=False),
    Column("layout_id", String(40), ForeignKey("layouts.layout_id"), nullable=False),
    Column("capacity", Integer, nullable=False),
    # The operator's key for the row (tix catalog apply); NULL for rows made otherwise (the seed).
    Column("external_id", Text, nullable=True, unique=True),
)

performers = Table(
    "performers",
    metadata,
    Column("performer_id", BigInteger, Identity(), primary_key=True),
    Column("name", Text, nullable=False),
    # tix.v1.EventCategory number.
    Column("category", SmallInteger, nullable=False),
    Column("genre", Text, nullable=False, server_default=""),
    Column("external_id", Text, nullable=True, unique=True),
)

events = Table(
    "events",
    metadata,
    Column("event_id", BigInteger, Identity(), primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("category", SmallInteger, nullable=False),
    Column("venue_id", BigInteger, ForeignKey("venues.venue_id"), nullable=False),
    Column("performer_id", BigInteger, ForeignKey("performers.performer_id"), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("sale_starts_at", DateTime(timezone=True), nullable=False),
    # Set when an operator closes the sale early; NULL: on sale until the event starts (tix.sales).
    Column("sale_ends_at", DateTime(timezone=True), nullable=True),
    Column("cancelled", Boolean, nullable=False, server_default=text("false")),
    Column("currency", String(3), nullable=False, server_default="USD"),
    # Price of each tier in minor units; tier N costs tier_prices[N] (1-based).
    Column("tier_prices", ARRAY(Integer), nullable=False),
    Column("max_seats_per_user", SmallInteger, nullable=False, server_default=text("8")),
    Column("queue_enabled", Boolean, nullable=False, server_default=text("false")),
    Column("queue_rate_per_second", Integer, nullable=False, server_default=text("50")),
    Column("queue_max_active", Integer, nullable=False, server_default=text("1000")),
    # An operator paused admissions (admin_svc): the room admits nobody until resumed.
    Column("queue_paused", Boolean, nullable=False, server_default=text("false")),
    # True once the event's tickets rows exist (materialised from the layout).
    Column("tickets_ready", Boolean, nullable=False, server_default=text("false")),
    # The availability band last recorded (tix.availability), and the seat-map version it was derived at.
    Column("availability_band", String(10), nullable=False, server_default="available"),
    Column("availability_version", BigInteger, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("external_id", Text, nullable=True, unique=True),
    CheckConstraint("ends_at >= starts_at", name="ends_after_start"),
    CheckConstraint("max_seats_per_user BETWEEN 1 AND 100", name="seat_limit_range"),
    CheckConstraint("availability_band IN ('available', 'few_left', 'sold_out')", name="availability_band_known"),
    Index("ix_events_starts_at", "starts_at"),
    Index("ix_events_venue_id", "venue_id"),
    Index("ix_events_performer_id", "performer_id"),
)

tickets = Table(
    "tickets",
    metadata,
    Column("event_id", BigInteger, ForeignKey("events.event_id", ondelete="CASCADE"), nullable=False),
    Column("seat_id", String(40), nullable=False),
    Column("section_id", String(20), nullable=False),
    Column("status", String(10), nullable=False, server_default="available"),
    Column("price_minor", Integer, nullable=False),
    Column("booking_id", UUID(as_uuid=True), nullable=True),
    Column("reserved_until", DateTime(timezone=True), nullable=True),
    # Fencing token of the hold that last wrote the row: a write carrying an older token is refused.
    Column("fence", BigInteger, nullable=False, server_default=text("0")),
    # Seat-map version of the row's last status change (seat_version_seq, see tix.seatfeed).
    Column("version", BigInteger, nullable=False, server_default=text("0")),
    # The seat's layout rank (1 = best), for best-available's database path (migration 0013_alloc_ticket_rank).
    Column("rank", Integer, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("event_id", "seat_id"),
    CheckConstraint(f"status IN {TICKET_STATUSES}", name="status_known"),
    CheckConstraint("(status = 'available') = (booking_id IS NULL)", name="holder_matches_status"),
    CheckConstraint("status <> 'reserved' OR reserved_until IS NOT NULL", name="reservation_has_deadline"),
    CheckConstraint("price_minor >= 0", name="price_not_negative"),
    Index("ix_tickets_booking_id", "booking_id", postgresql_where=text("booking_id IS NOT NULL")),
    Index("ix_tickets_event_section_status", "event_id", "section_id", "status"),
    Index("ix_tickets_event_id_version", "event_id", "version"),
    Index("ix_tickets_event_free_rank", "event_id", "rank", postgresql_where=text("status = 'available'")),
)

bookings = Table(
    "bookings",
    metadata,
    Column("booking_id", UUID(as_uuid=True), primary_key=True),
    Column("event_id", BigInteger, ForeignKey("events.event_id"), nullable=False),
    Column("user_id", Text, nullable=False),
    Column("status", String(12), nullable=False),
    Column("status_reason", Text, nullable=False, server_default=""),
    Column("seat_ids", ARRAY(Text), nullable=False),
    Column("seat_prices", ARRAY(Integer), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("fence", BigInteger, nullable=False, server_default=text("0")),
    Column("request_id", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("confirmed_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"status IN {BOOKING_STATUSES}", name="status_known"),
    CheckConstraint("cardinality(seat_ids) = cardinality(seat_prices)", name="a_price_per_seat"),
    UniqueConstraint("user_id", "request_id", name="uq_bookings_user_request"),
    Index("ix_bookings_open_expiry", "expires_at", postgresql_where=text("status = 'reserved'")),
    Index("ix_bookings_event_user", "event_id", "user_id"),
    # ListBookings: one fan's bookings newest first (migration 0010).
    Index("ix_bookings_user_created", "user_id", text("created_at DESC"), text("booking_id DESC")),
)

# Fencing tokens of seat holds (migration 0002): monotonic whatever Redis does, stored in tickets/bookings.fence.
booking_fence_seq = Sequence("booking_fence_seq", metadata=metadata)
# The seat-map clock (migration 0004, see tix.seatfeed).
seat_version_seq = Sequence("seat_version_seq", metadata=metadata)

payments = Table(
    "payments",
    metadata,
    Column("booking_id", UUID(as_uuid=True), ForeignKey("bookings.booking_id"), primary_key=True),
    Column("payment_intent_id", Text, nullable=True, unique=True),
    Column("client_secret", Text, nullable=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),
    Column("refund_id", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"status IN {PAYMENT_STATUSES}", name="status_known"),
)

stripe_events = Table(
    "stripe_events",
    metadata,
    Column("stripe_event_id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Operators' changes (tix.audit), written in the same transaction as the change.
audit_log = Table(
    "audit_log",
    metadata,
    Column("audit_id", BigInteger, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Index("ix_audit_log_target_at", "target", "at"),
)

# Every change to events, venues and performers adds rows here in its own transaction (statement triggers of
# migration 0008_searchcdc_outbox_capture), booking adds 'availability' rows when an event's band changes, and every insert NOTIFYs
# ``tix_outbox``; search indexers tail it from their cursor (search_svc.indexer).
outbox = Table(
    "outbox",
    metadata,
    Column("outbox_id", BigInteger, Identity(), primary_key=True),
    # "event", "venue", "performer", "availability" (the band, from booking), "catalog" (aggregate "*": reloaded
    # wholesale by a seed): what changed.
    Column("topic", String(20), nullable=False),
    Column("aggregate_id", Text, nullable=False),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox_cursors = Table(
    "outbox_cursors",
    metadata,
    Column("consumer", Text, primary_key=True),
    Column("last_outbox_id", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Denormalised search documents (the PostgreSQL search backend), rebuilt from the catalog through the outbox.
search_documents = Table(
    "search_documents",
    metadata,
    Column("event_id", BigInteger, ForeignKey("events.event_id", ondelete="CASCADE"), primary_key=True),
    Column("name", Text, nullable=False),
    Column("performer_id", BigInteger, nullable=False),
    Column("performer_name", Text, nullable=False),
    Column("venue_id", BigInteger, nullable=False),
    Column("venue_name", Text, nullable=False),
    Column("city", Text, nullable=False),
    Column("country_code", String(2), nullable=False),
    Column("category", SmallInteger, nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("latitude", Double, nullable=False),
    Column("longitude", Double, nullable=False),
    Column("min_price_minor", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    # Weighted: event and performer names (A), venue and city (B), description (C).
    Column("document", TSVECTOR, nullable=False),
    # Lower-cased names and places (the Elasticsearch projection reads it; PostgreSQL corrects typos against
    # search_terms).
    Column("search_text", Text, nullable=False),
    Index("ix_search_documents_document", "document", postgresql_using="gin"),
    # Soonest first behind each leading filter, with event_id for keyset paging (migration 0009_searchpg_search_at_scale).
    Index("ix_search_documents_starts_at", "starts_at", "event_id"),
    # city carried along so a city's count is an index-only scan (migration 0015_search_city_index_only).
    Index("ix_search_documents_city", text("lower(city)"), "starts_at", "event_id", postgresql_include=["city"]),
    Index("ix_search_documents_performer", "performer_id", "starts_at", "event_id"),
    Index("ix_search_documents_venue", "venue_id", "starts_at", "event_id"),
    Index("ix_search_documents_category", "category", "starts_at", "event_id"),
    # Relevance tiers: names, then names and places, read first (migration 0014_search_relevance_tiers).
    Index("ix_search_documents_names", text("ts_filter(document, '{a}')"), postgresql_using="gin"),
    Index("ix_search_documents_names_places", text("ts_filter(document, '{a,b}')"), postgresql_using="gin"),
)

# Every word the search documents hold (filled by statement triggers on search_documents): misspelt query words
# are corrected against it by trigram similarity.
search_terms = Table(
    "search_terms",
    metadata,
    Column("term", Text(collation="C"), primary_key=True),
)
