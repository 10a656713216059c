"""catalog change capture: every change to events, venues and performers writes an outbox row in its own
transaction, every outbox insert wakes the indexers (NOTIFY); external ids for catalog files

Revision ID: 0008_searchcdc_outbox_capture
Revises: 0007_admission_consumed
Create Date: 2026-11-30 09:10:00.000000
"""

from alembic import op

revision = '0008_searchcdc_outbox_capture'
down_revision = '0007_admission_consumed'
branch_labels = None
depends_on = None

# Columns whose change does not alter what search shows of an event: booking's own bookkeeping (the band has its
# own 'availability' outbox row, written only when it changes) and the touch time.
_EVENT_BOOKKEEPING = "{availability_band,availability_version,tickets_ready,updated_at}"

_CAPTURE = """
CREATE FUNCTION tix_capture_catalog_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
-- Statement-level, over the statement's transition tables: one set-based INSERT per statement, whatever its size.
-- TG_ARGV: the outbox topic, the table's id column, the columns whose change alone is not worth an outbox row.
DECLARE
    topic text := TG_ARGV[0];
    id_column text := TG_ARGV[1];
    ignored text := TG_ARGV[2];
BEGIN
    IF TG_OP = 'UPDATE' THEN
        EXECUTE format(
            'INSERT INTO outbox (topic, aggregate_id, payload) '
            'SELECT %L, CAST(n.%I AS text), jsonb_build_object(''op'', ''update'') '
            'FROM new_rows n JOIN old_rows o ON o.%I = n.%I '
            'WHERE to_jsonb(n) - CAST(%L AS text[]) IS DISTINCT FROM to_jsonb(o) - CAST(%L AS text[]) '
            'ORDER BY n.%I',
            topic, id_column, id_column, id_column, ignored, ignored, id_column);
    ELSIF TG_OP = 'INSERT' THEN
        EXECUTE format(
            'INSERT INTO outbox (topic, aggregate_id, payload) '
            'SELECT %L, CAST(n.%I AS text), jsonb_build_object(''op'', ''insert'') FROM new_rows n ORDER BY n.%I',
            topic, id_column, id_column);
    ELSE
        EXECUTE format(
            'INSERT INTO outbox (topic, aggregate_id, payload) '
            'SELECT %L, CAST(o.%I AS text), jsonb_build_object(''op'', ''delete'') FROM old_rows o ORDER BY o.%I',
            topic, id_column, id_column);
    END IF;
    RETURN NULL;
END
$fn$
"""

# NOTIFY is delivered at commit (never for a rolled-back insert) and folded to one per transaction.
_NOTIFY = """
CREATE FUNCTION tix_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_notify('tix_outbox', '');
    RETURN NULL;
END
$fn$
"""

_TABLES = (("events", "event", "event_id", _EVENT_BOOKKEEPING), ("venues", "venue", "venue_id", "{}"),
           ("performers", "performer", "performer_id", "{}"))


def upgrade() -> None:
    for table in ("venues", "performers", "events"):
        # Operators' own keys (tix catalog apply): a catalog file names rows by them, so applying it twice is a no-op.
        op.execute(f"ALTER TABLE {table} ADD COLUMN external_id text")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT uq_{table}_external_id UNIQUE (external_id)")
    op.execute(_CAPTURE)
    op.execute(_NOTIFY)
    for table, topic, id_column, ignored in _TABLES:
        args = f"'{topic}', '{id_column}', '{ignored}'"
        op.execute(
            f"CREATE TRIGGER {table}_outbox_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows "
            f"FOR EACH STATEMENT EXECUTE FUNCTION tix_capture_catalog_change({args})"
        )
        op.execute(
            f"CREATE TRIGGER {table}_outbox_update AFTER UPDATE ON {table} "
            f"REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
            f"FOR EACH STATEMENT EXECUTE FUNCTION tix_capture_catalog_change({args})"
        )
        op.execute(
            f"CREATE TRIGGER {table}_outbox_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows "
            f"FOR EACH STATEMENT EXECUTE FUNCTION tix_capture_catalog_change({args})"
        )
    op.execute("CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION tix_outbox_notify()")


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    for table, _, _, _ in _TABLES:
        for kind in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER {table}_outbox_{kind} ON {table}")
    op.execute("DROP FUNCTION tix_outbox_notify()")
    op.execute("DROP FUNCTION tix_capture_catalog_change()")
    for table in ("venues", "performers", "events"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN external_id")
