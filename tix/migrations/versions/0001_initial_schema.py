"""catalog, tickets, bookings, payments, outbox, search documents

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 23:30:00.007549
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # pg_trgm: typo-tolerant search; cube + earthdistance: an indexed "within N km of a point".
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS cube")
    op.execute("CREATE EXTENSION IF NOT EXISTS earthdistance")
    op.create_table('idempotency_records',
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('request_id', sa.Text(), nullable=False),
    sa.Column('response', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'request_id', name=op.f('pk_idempotency_records'))
    )
    op.create_table('layouts',
    sa.Column('layout_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('tier_count', sa.SmallInteger(), nullable=False),
    sa.PrimaryKeyConstraint('layout_id', name=op.f('pk_layouts'))
    )
    op.create_table('outbox',
    sa.Column('outbox_id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('topic', sa.String(length=20), nullable=False),
    sa.Column('aggregate_id', sa.Text(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('outbox_id', name=op.f('pk_outbox'))
    )
    op.create_table('outbox_cursors',
    sa.Column('consumer', sa.Text(), nullable=False),
    sa.Column('last_outbox_id', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('consumer', name=op.f('pk_outbox_cursors'))
    )
    op.create_table('performers',
    sa.Column('performer_id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('category', sa.SmallInteger(), nullable=False),
    sa.Column('genre', sa.Text(), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('performer_id', name=op.f('pk_performers'))
    )
    op.create_table('stripe_events',
    sa.Column('stripe_event_id', sa.Text(), nullable=False),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('stripe_event_id', name=op.f('pk_stripe_events'))
    )
    op.create_table('layout_seats',
    sa.Column('layout_id', sa.String(length=40), nullable=False),
    sa.Column('seat_id', sa.String(length=40), nullable=False),
    sa.Column('section_id', sa.String(length=20), nullable=False),
    sa.Column('section_name', sa.Text(), nullable=False),
    sa.Column('row_label', sa.String(length=8), nullable=False),
    sa.Column('number', sa.SmallInteger(), nullable=False),
    sa.Column('price_tier', sa.SmallInteger(), nullable=False),
    sa.Column('x', sa.REAL(), nullable=False),
    sa.Column('y', sa.REAL(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['layout_id'], ['layouts.layout_id'], name=op.f('fk_layout_seats_layout_id_layouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('layout_id', 'seat_id', name=op.f('pk_layout_seats'))
    )
    op.create_index('ix_layout_seats_section_row', 'layout_seats', ['layout_id', 'section_id', 'row_label', 'number'], unique=False)
    op.create_table('venues',
    sa.Column('venue_id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('city', sa.Text(), nullable=False),
    sa.Column('region', sa.Text(), server_default='', nullable=False),
    sa.Column('country_code', sa.String(length=2), nullable=False),
    sa.Column('latitude', sa.Double(), nullable=False),
    sa.Column('longitude', sa.Double(), nullable=False),
    sa.Column('time_zone', sa.Text(), nullable=False),
    sa.Column('layout_id', sa.String(length=40), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['layout_id'], ['layouts.layout_id'], name=op.f('fk_venues_layout_id_layouts')),
    sa.PrimaryKeyConstraint('venue_id', name=op.f('pk_venues'))
    )
    op.create_table('events',
    sa.Column('event_id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('category', sa.SmallInteger(), nullable=False),
    sa.Column('venue_id', sa.BigInteger(), nullable=False),
    sa.Column('performer_id', sa.BigInteger(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sale_starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cancelled', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('currency', sa.String(length=3), server_default='USD', nullable=False),
    sa.Column('tier_prices', sa.ARRAY(sa.Integer()), nullable=False),
    sa.Column('max_seats_per_user', sa.SmallInteger(), server_default=sa.text('8'), nullable=False),
    sa.Column('queue_enabled', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('queue_rate_per_second', sa.Integer(), server_default=sa.text('50'), nullable=False),
    sa.Column('queue_max_active', sa.Integer(), server_default=sa.text('1000'), nullable=False),
    sa.Column('tickets_ready', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('ends_at >= starts_at', name=op.f('ck_events_ends_after_start')),
    sa.CheckConstraint('max_seats_per_user BETWEEN 1 AND 100', name=op.f('ck_events_seat_limit_range')),
    sa.ForeignKeyConstraint(['performer_id'], ['performers.performer_id'], name=op.f('fk_events_performer_id_performers')),
    sa.ForeignKeyConstraint(['venue_id'], ['venues.venue_id'], name=op.f('fk_events_venue_id_venues')),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_events'))
    )
    op.create_index('ix_events_performer_id', 'events', ['performer_id'], unique=False)
    op.create_index('ix_events_starts_at', 'events', ['starts_at'], unique=False)
    op.create_index('ix_events_venue_id', 'events', ['venue_id'], unique=False)
    op.create_table('bookings',
    sa.Column('booking_id', sa.UUID(), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('status_reason', sa.Text(), server_default='', nullable=False),
    sa.Column('seat_ids', sa.ARRAY(sa.Text()), nullable=False),
    sa.Column('seat_prices', sa.ARRAY(sa.Integer()), nullable=False),
    sa.Column('total_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('fence', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('request_id', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('reserved', 'confirmed', 'cancelled', 'expired', 'refunded')", name=op.f('ck_bookings_status_known')),
    sa.CheckConstraint('cardinality(seat_ids) = cardinality(seat_prices)', name=op.f('ck_bookings_a_price_per_seat')),
    sa.ForeignKeyConstraint(['event_id'], ['events.event_id'], name=op.f('fk_bookings_event_id_events')),
    sa.PrimaryKeyConstraint('booking_id', name=op.f('pk_bookings')),
    sa.UniqueConstraint('user_id', 'request_id', name='uq_bookings_user_request')
    )
    op.create_index('ix_bookings_event_user', 'bookings', ['event_id', 'user_id'], unique=False)
    op.create_index('ix_bookings_open_expiry', 'bookings', ['expires_at'], unique=False, postgresql_where=sa.text("status = 'reserved'"))
    op.create_table('search_documents',
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('performer_id', sa.BigInteger(), nullable=False),
    sa.Column('performer_name', sa.Text(), nullable=False),
    sa.Column('venue_id', sa.BigInteger(), nullable=False),
    sa.Column('venue_name', sa.Text(), nullable=False),
    sa.Column('city', sa.Text(), nullable=False),
    sa.Column('country_code', sa.String(length=2), nullable=False),
    sa.Column('category', sa.SmallInteger(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('latitude', sa.Double(), nullable=False),
    sa.Column('longitude', sa.Double(), nullable=False),
    sa.Column('min_price_minor', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('document', postgresql.TSVECTOR(), nullable=False),
    sa.Column('search_text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.event_id'], name=op.f('fk_search_documents_event_id_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_search_documents'))
    )
    op.create_index('ix_search_documents_city', 'search_documents', [sa.literal_column('lower(city)'), 'starts_at'], unique=False)
    op.create_index('ix_search_documents_document', 'search_documents', ['document'], unique=False, postgresql_using='gin')
    op.create_index('ix_search_documents_performer', 'search_documents', ['performer_id', 'starts_at'], unique=False)
    op.create_index('ix_search_documents_starts_at', 'search_documents', ['starts_at'], unique=False)
    op.execute("CREATE INDEX ix_search_documents_trgm ON search_documents USING gin (search_text gin_trgm_ops)")
    op.execute(
        "CREATE INDEX ix_search_documents_earth ON search_documents USING gist (ll_to_earth(latitude, longitude))"
    )
    op.create_table('tickets',
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('seat_id', sa.String(length=40), nullable=False),
    sa.Column('section_id', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=10), server_default='available', nullable=False),
    sa.Column('price_minor', sa.Integer(), nullable=False),
    sa.Column('booking_id', sa.UUID(), nullable=True),
    sa.Column('reserved_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fence', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.CheckConstraint("(status = 'available') = (booking_id IS NULL)", name=op.f('ck_tickets_holder_matches_status')),
    sa.CheckConstraint("status <> 'reserved' OR reserved_until IS NOT NULL", name=op.f('ck_tickets_reservation_has_deadline')),
    sa.CheckConstraint("status IN ('available', 'reserved', 'booked')", name=op.f('ck_tickets_status_known')),
    sa.CheckConstraint('price_minor >= 0', name=op.f('ck_tickets_price_not_negative')),
    sa.ForeignKeyConstraint(['event_id'], ['events.event_id'], name=op.f('fk_tickets_event_id_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', 'seat_id', name=op.f('pk_tickets'))
    )
    op.create_index('ix_tickets_booking_id', 'tickets', ['booking_id'], unique=False, postgresql_where=sa.text('booking_id IS NOT NULL'))
    op.create_index('ix_tickets_event_section_status', 'tickets', ['event_id', 'section_id', 'status'], unique=False)
    op.create_table('payments',
    sa.Column('booking_id', sa.UUID(), nullable=False),
    sa.Column('payment_intent_id', sa.Text(), nullable=True),
    sa.Column('client_secret', sa.Text(), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('refund_id', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('requires_payment', 'processing', 'succeeded', 'failed', 'canceled', 'refunded')", name=op.f('ck_payments_status_known')),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.booking_id'], name=op.f('fk_payments_booking_id_bookings')),
    sa.PrimaryKeyConstraint('booking_id', name=op.f('pk_payments')),
    sa.UniqueConstraint('payment_intent_id', name=op.f('uq_payments_payment_intent_id'))
    )


def downgrade() -> None:
    op.drop_table('payments')
    op.drop_index('ix_tickets_event_section_status', table_name='tickets')
    op.drop_index('ix_tickets_booking_id', table_name='tickets', postgresql_where=sa.text('booking_id IS NOT NULL'))
    op.drop_table('tickets')
    op.drop_index('ix_search_documents_earth', table_name='search_documents')
    op.drop_index('ix_search_documents_trgm', table_name='search_documents')
    op.drop_index('ix_search_documents_starts_at', table_name='search_documents')
    op.drop_index('ix_search_documents_performer', table_name='search_documents')
    op.drop_index('ix_search_documents_document', table_name='search_documents', postgresql_using='gin')
    op.drop_index('ix_search_documents_city', table_name='search_documents')
    op.drop_table('search_documents')
    op.drop_index('ix_bookings_open_expiry', table_name='bookings', postgresql_where=sa.text("status = 'reserved'"))
    op.drop_index('ix_bookings_event_user', table_name='bookings')
    op.drop_table('bookings')
    op.drop_index('ix_events_venue_id', table_name='events')
    op.drop_index('ix_events_starts_at', table_name='events')
    op.drop_index('ix_events_performer_id', table_name='events')
    op.drop_table('events')
    op.drop_table('venues')
    op.drop_index('ix_layout_seats_section_row', table_name='layout_seats')
    op.drop_table('layout_seats')
    op.drop_table('stripe_events')
    op.drop_table('performers')
    op.drop_table('outbox_cursors')
    op.drop_table('outbox')
    op.drop_table('layouts')
    op.drop_table('idempotency_records')
