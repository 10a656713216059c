"""payment cancellations owed: PaymentIntents to cancel, retried by the booking sweeper until Stripe answers

Revision ID: 0011_settle_cancellations
Revises: 0010_web_bookings_by_user
Create Date: 2026-11-30 09:30:00.000000
"""

from alembic import op

revision = '0011_settle_cancellations'
down_revision = '0010_web_bookings_by_user'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No foreign key to bookings: a stray intent's booking may never have existed, or was withdrawn.
    op.execute(
        """
        CREATE TABLE payment_cancellations (
            payment_intent_id text PRIMARY KEY,
            booking_id uuid,
            attempts integer NOT NULL DEFAULT 0,
            last_error text NOT NULL DEFAULT '',
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX payment_cancellations_due ON payment_cancellations (next_attempt_at)")


def downgrade() -> None:
    op.execute("DROP TABLE payment_cancellations")
