"""The search document of an event: one projection of the catalog, used by the bulk seed and by the search
indexer alike, so a seeded document and a re-indexed one are the same.

Names (A) and places (B) decide relevance; the description (C) only widens recall. One text search configuration
for all three: 'simple' (lower-case, no stemming, no stop words), because the text is mostly proper nouns —
'english' would drop "The" and "Who", stem band names ("Monkeys" -> "monkey") and make a query's lexemes depend on
which field they were meant for. The search service queries with the same 'simple' configuration, prefix matching
(:*) and pg_trgm over ``search_text`` for inflections and typos.
"""

from __future__ import annotations

_INSERT = """
INSERT INTO search_documents (event_id, name, performer_id, performer_name, venue_id, venue_name, city,
    country_code, category, starts_at, latitude, longitude, min_price_minor, currency, document, search_text)
SELECT e.event_id, e.name, p.performer_id, p.name, v.venue_id, v.name, v.city, v.country_code, e.category,
    e.starts_at, v.latitude, v.longitude,
    coalesce((SELECT min(price) FROM unnest(e.tier_prices) AS price), 0), e.currency,
    setweight(to_tsvector('simple', names.text), 'A')
        || setweight(to_tsvector('simple', v.name || ' ' || v.city), 'B')
        || setweight(to_tsvector('simple', e.description), 'C'),
    lower(names.text || ' ' || v.name || ' ' || v.city)
FROM events e
JOIN performers p ON p.performer_id = e.performer_id
JOIN venues v ON v.venue_id = e.venue_id
-- The event name usually contains the performer's name already: index it once.
CROSS JOIN LATERAL (
    SELECT CASE WHEN strpos(e.name, p.name) > 0 THEN e.name ELSE e.name || ' ' || p.name END AS text
) AS names
WHERE {where}
"""

_UPSERT = """
ON CONFLICT (event_id) DO UPDATE SET
    name = EXCLUDED.name, performer_id = EXCLUDED.performer_id, performer_name = EXCLUDED.performer_name,
    venue_id = EXCLUDED.venue_id, venue_name = EXCLUDED.venue_name, city = EXCLUDED.city,
    country_code = EXCLUDED.country_code, category = EXCLUDED.category, starts_at = EXCLUDED.starts_at,
    latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude, min_price_minor = EXCLUDED.min_price_minor,
    currency = EXCLUDED.currency, document = EXCLUDED.document, search_text = EXCLUDED.search_text
"""


def insert_documents_sql(where: str) -> str:
    """Build the documents of the events matching ``where`` (a condition on ``e``, ``p``, ``v``); for new events."""
    return _INSERT.format(where=where)


def upsert_documents_sql(where: str) -> str:
    """The same, replacing documents that exist (re-indexing after a catalog change)."""
    return _INSERT.format(where=where) + _UPSERT
