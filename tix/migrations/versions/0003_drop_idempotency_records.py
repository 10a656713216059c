"""drop idempotency_records: never written; request ids are replayed from the bookings themselves

Revision ID: 0003_drop_idempotency_records
Revises: 0002
Create Date: 2026-11-30 06:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_drop_idempotency_records'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Booking ids derived from (user, request id) make a retried request meet its first answer in the bookings
    # table, so this table was never used.
    op.drop_table('idempotency_records')


def downgrade() -> None:
    op.create_table('idempotency_records',
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('request_id', sa.Text(), nullable=False),
    sa.Column('response', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'request_id', name=op.f('pk_idempotency_records'))
    )
