"""search at a million events: ordered indexes per filter, the word vocabulary for typos, name indexes

Revision ID: 0009_searchpg_search_at_scale
Revises: 0008_searchcdc_outbox_capture
Create Date: 2026-11-30 09:10:00.000000

Every query kind of the PostgreSQL search backend walks one ordered index and stops at the page:

- ``(starts_at, event_id)`` and the same behind ``category``, ``lower(city)``, ``performer_id`` and ``venue_id``:
  soonest first with keyset paging, no sort of the match set;
- names to ids on ``performers`` and ``venues`` (btree on ``lower(name)`` in byte order, so a prefix is a range;
  trigram GIN for suggestions and typos), and a
  GiST index on the venues' position: a radius or a point selects venues first (a few thousand rows), then each
  venue's events through ``(venue_id, starts_at, event_id)``;
- ``search_terms``: every word the documents hold, with a trigram index, so a misspelt word is corrected against
  the vocabulary (tens of thousands of words) before the full-text query instead of comparing trigrams with every
  document. Statement triggers add the words of inserted and updated documents (one set-based insert per
  statement, so bulk loads stay bulk).

The trigram index over every document's text and the GiST index over every document's position are dropped:
nothing queries them any more, and they were the slowest indexes to build and maintain.
"""

from alembic import op

revision = '0009_searchpg_search_at_scale'
down_revision = '0008_searchcdc_outbox_capture'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_search_documents_trgm")
    op.execute("DROP INDEX IF EXISTS ix_search_documents_earth")
    op.execute("DROP INDEX IF EXISTS ix_search_documents_starts_at")
    op.execute("DROP INDEX IF EXISTS ix_search_documents_city")
    op.execute("DROP INDEX IF EXISTS ix_search_documents_performer")
    op.execute("CREATE INDEX ix_search_documents_starts_at ON search_documents (starts_at, event_id)")
    op.execute(
        "CREATE INDEX ix_search_documents_city ON search_documents (lower(city), starts_at, event_id)"
    )
    op.execute(
        "CREATE INDEX ix_search_documents_performer ON search_documents (performer_id, starts_at, event_id)"
    )
    op.execute("CREATE INDEX ix_search_documents_venue ON search_documents (venue_id, starts_at, event_id)")
    op.execute("CREATE INDEX ix_search_documents_category ON search_documents (category, starts_at, event_id)")

    op.execute("CREATE INDEX ix_performers_lower_name ON performers ((lower(name) COLLATE \"C\"))")
    op.execute("CREATE INDEX ix_performers_name_trgm ON performers USING gin (lower(name) gin_trgm_ops)")
    op.execute("CREATE INDEX ix_venues_lower_name ON venues ((lower(name) COLLATE \"C\"))")
    op.execute("CREATE INDEX ix_venues_name_trgm ON venues USING gin (lower(name) gin_trgm_ops)")
    op.execute("CREATE INDEX ix_venues_lower_city ON venues ((lower(city) COLLATE \"C\"))")
    op.execute("CREATE INDEX ix_venues_city_trgm ON venues USING gin (lower(city) gin_trgm_ops)")
    op.execute("CREATE INDEX ix_venues_earth ON venues USING gist (ll_to_earth(latitude, longitude))")

    op.execute('CREATE TABLE search_terms (term text COLLATE "C" PRIMARY KEY)')
    op.execute("CREATE INDEX ix_search_terms_trgm ON search_terms USING gin (term gin_trgm_ops)")
    op.execute(
        """
        CREATE FUNCTION search_terms_collect() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO search_terms (term)
            SELECT DISTINCT word FROM changed_documents, unnest(tsvector_to_array(document)) AS word
            ON CONFLICT (term) DO NOTHING;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER search_terms_on_insert AFTER INSERT ON search_documents "
        "REFERENCING NEW TABLE AS changed_documents FOR EACH STATEMENT EXECUTE FUNCTION search_terms_collect()"
    )
    op.execute(
        "CREATE TRIGGER search_terms_on_update AFTER UPDATE ON search_documents "
        "REFERENCING NEW TABLE AS changed_documents FOR EACH STATEMENT EXECUTE FUNCTION search_terms_collect()"
    )
    op.execute(
        "INSERT INTO search_terms (term) SELECT DISTINCT word FROM search_documents, "
        "unnest(tsvector_to_array(document)) AS word ON CONFLICT DO NOTHING"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER search_terms_on_update ON search_documents")
    op.execute("DROP TRIGGER search_terms_on_insert ON search_documents")
    op.execute("DROP FUNCTION search_terms_collect()")
    op.execute("DROP TABLE search_terms")
    for index in (
        "ix_venues_earth", "ix_venues_city_trgm", "ix_venues_lower_city", "ix_venues_name_trgm",
        "ix_venues_lower_name", "ix_performers_name_trgm", "ix_performers_lower_name",
        "ix_search_documents_category", "ix_search_documents_venue", "ix_search_documents_performer",
        "ix_search_documents_city", "ix_search_documents_starts_at",
    ):
        op.execute(f"DROP INDEX {index}")
    op.execute("CREATE INDEX ix_search_documents_starts_at ON search_documents (starts_at)")
    op.execute("CREATE INDEX ix_search_documents_city ON search_documents (lower(city), starts_at)")
    op.execute("CREATE INDEX ix_search_documents_performer ON search_documents (performer_id, starts_at)")
    op.execute("CREATE INDEX ix_search_documents_trgm ON search_documents USING gin (search_text gin_trgm_ops)")
    op.execute(
        "CREATE INDEX ix_search_documents_earth ON search_documents USING gist (ll_to_earth(latitude, longitude))"
    )
