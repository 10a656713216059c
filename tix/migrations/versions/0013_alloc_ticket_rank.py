"""ticket rank: best-available's database path takes the best free seats from an index, not a scan

Revision ID: 0013_alloc_ticket_rank
Revises: 0012_admin_queue_paused
Create Date: 2026-11-30 09:10:00.000000
"""

from alembic import op

revision = '0013_alloc_ticket_rank'
down_revision = '0012_admin_queue_paused'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The seat's layout rank (1 = best), copied when tickets are materialised (tix.inventory): with Redis down,
    # best-available reads the best free seats of an event from this partial index, a few hundred rows at most.
    op.execute("ALTER TABLE tickets ADD COLUMN rank integer NOT NULL DEFAULT 0")
    op.execute(
        """
        UPDATE tickets t SET rank = ls.rank
        FROM events e JOIN venues v ON v.venue_id = e.venue_id JOIN layout_seats ls ON ls.layout_id = v.layout_id
        WHERE e.event_id = t.event_id AND ls.seat_id = t.seat_id
        """
    )
    op.execute("CREATE INDEX ix_tickets_event_free_rank ON tickets (event_id, rank) WHERE status = 'available'")


def downgrade() -> None:
    op.execute("DROP INDEX ix_tickets_event_free_rank")
    op.execute("ALTER TABLE tickets DROP COLUMN rank")
