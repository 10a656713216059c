"""search: relevance tiers through their own indexes, so a keyword query's bounded candidates are its best matches

Revision ID: 0014_search_relevance_tiers
Revises: 0013_alloc_ticket_rank
Create Date: 2026-11-30 12:40:00.000000

A keyword query ranks at most a bounded number of candidates. Read from the one GIN index over the whole document,
those were the first matches found, not the best: a performer's name could lose its place to a thousand events
that mention the word in their description. Two expression indexes over the same weighted tsvector (no new column,
no rewrite of the table) let the query read the best tier first: documents whose names (weight A) match, then
names and places (A, B), then anywhere (see search_svc.postgres).
"""

from alembic import op

revision = '0014_search_relevance_tiers'
down_revision = '0013_alloc_ticket_rank'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_search_documents_names ON search_documents "
        "USING gin (ts_filter(document, '{a}'))"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_search_documents_names_places ON search_documents "
        "USING gin (ts_filter(document, '{a,b}'))"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_search_documents_names_places")
    op.execute("DROP INDEX IF EXISTS ix_search_documents_names")
