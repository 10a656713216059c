"""bookings by user: ListBookings reads a fan's bookings newest first

Revision ID: 0010_web_bookings_by_user
Revises: 0009_searchpg_search_at_scale
Create Date: 2026-11-30 09:20:00.000000
"""

from alembic import op

revision = '0010_web_bookings_by_user'
down_revision = '0009_searchpg_search_at_scale'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Keyset pages of one fan's bookings: (created_at, booking_id) descending, straight from the index.
    op.execute(
        "CREATE INDEX ix_bookings_user_created ON bookings (user_id, created_at DESC, booking_id DESC)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_bookings_user_created")
