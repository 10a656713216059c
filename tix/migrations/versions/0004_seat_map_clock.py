"""seat map clock: durable per-seat versions, availability bands

Revision ID: 0004_seat_map_clock
Revises: 0003_drop_idempotency_records
Create Date: 2026-11-30 06:00:00.000000
"""

from alembic import op

revision = '0004_seat_map_clock'
down_revision = '0003_drop_idempotency_records'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each statement that changes ticket statuses draws one value and stores it on the rows it changes; an event's
    # seat-map version is the highest value on its rows (see tix.seatfeed).
    op.execute("CREATE SEQUENCE seat_version_seq AS bigint START WITH 1")
    op.execute("ALTER TABLE tickets ADD COLUMN version bigint NOT NULL DEFAULT 0")
    op.execute("CREATE INDEX ix_tickets_event_id_version ON tickets (event_id, version)")
    op.execute(
        "ALTER TABLE events ADD COLUMN availability_band varchar(10) NOT NULL DEFAULT 'available'"
        " CONSTRAINT ck_events_availability_band_known"
        " CHECK (availability_band IN ('available', 'few_left', 'sold_out'))"
    )
    op.execute("ALTER TABLE events ADD COLUMN availability_version bigint NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute("ALTER TABLE events DROP COLUMN availability_version")
    op.execute("ALTER TABLE events DROP COLUMN availability_band")
    op.execute("DROP INDEX ix_tickets_event_id_version")
    op.execute("ALTER TABLE tickets DROP COLUMN version")
    op.execute("DROP SEQUENCE seat_version_seq")
