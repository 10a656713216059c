"""admission consumed: an admission token buys one booking

Revision ID: 0007_admission_consumed
Revises: 0006_sale_ends_at
Create Date: 2026-11-30 09:00:00.000000
"""

from alembic import op

revision = '0007_admission_consumed'
down_revision = '0006_sale_ends_at'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The queue ticket (the admission token's jti) of the booking it bought; unique, so a token is spent once.
    op.execute("ALTER TABLE bookings ADD COLUMN admission_ticket text")
    op.execute(
        "CREATE UNIQUE INDEX bookings_admission_ticket_key ON bookings (admission_ticket)"
        " WHERE admission_ticket IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX bookings_admission_ticket_key")
    op.execute("ALTER TABLE bookings DROP COLUMN admission_ticket")
