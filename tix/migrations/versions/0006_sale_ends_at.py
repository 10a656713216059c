"""sale end: operators can close an event's sale before it starts

Revision ID: 0006_sale_ends_at
Revises: 0005_audit_log
Create Date: 2026-11-30 07:30:00.000000
"""

from alembic import op

revision = '0006_sale_ends_at'
down_revision = '0005_audit_log'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: the sale runs until the event starts (tix.sales).
    op.execute("ALTER TABLE events ADD COLUMN sale_ends_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE events DROP COLUMN sale_ends_at")
