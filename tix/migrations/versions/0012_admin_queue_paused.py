"""waiting room pause: operators stop admissions without turning the room off

Revision ID: 0012_admin_queue_paused
Revises: 0011_settle_cancellations
Create Date: 2026-11-30 09:10:00.000000
"""

from alembic import op

revision = '0012_admin_queue_paused'
down_revision = '0011_settle_cancellations'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # True: the queue admits nobody (fans keep their places and may still join); see admin_svc.
    op.execute("ALTER TABLE events ADD COLUMN queue_paused boolean NOT NULL DEFAULT false")


def downgrade() -> None:
    op.execute("ALTER TABLE events DROP COLUMN queue_paused")
