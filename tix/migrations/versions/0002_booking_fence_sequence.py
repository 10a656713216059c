"""booking fence sequence: fencing tokens for seat holds

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 23:45:00.000000
"""

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every successful seat hold draws the next value; tickets.fence and bookings.fence record it, so a write made
    # for an older hold can be recognised and refused whatever Redis did (lost keys, restarts, clock jumps).
    op.execute("CREATE SEQUENCE booking_fence_seq AS bigint START WITH 1")


def downgrade() -> None:
    op.execute("DROP SEQUENCE booking_fence_seq")
