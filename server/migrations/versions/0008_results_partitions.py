"""verification results partitioned by month, the replay guard in its own table (issue 18)

- signed_counters(device_id, counter, result_id), primary key (device_id, counter): one row per
  signed result stored, filled from the signed results already there. It takes over from 0005's
  unique index on (device_id, counter), which a partitioned table cannot hold (every unique index
  must contain the partition key) and which would forget a counter once retention deletes its
  result. A trigger claims the counter of every signed row inserted (the ingest writer claims it
  first), so no insert path can store one counter twice.
- PostgreSQL: verification_results becomes a table partitioned by RANGE (result_id). A UUIDv7
  starts with its creation time in milliseconds, so one month of ids is one range; the primary key
  (result_id) is the partition key, hence still unique table-wide. Partitions live in the schema
  result_partitions: a DEFAULT one, one per month the stored ids name, and the current month plus
  three ahead (`fpverify server partitions` makes later ones). The rows are copied into the new
  table and counted before the old one is dropped; Alembic runs all of it in one transaction.
- SQLite keeps a plain table; it only gets the counter table and the trigger.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = "result_partitions"
AHEAD = 3
OLD = "verification_results_unpartitioned"
SIGNED = "signature IS NOT NULL"

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION claim_signed_counters() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO signed_counters (device_id, counter, result_id)
    SELECT n.device_id, n.counter, n.result_id FROM inserted n
    WHERE n.signature IS NOT NULL AND n.counter IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM signed_counters c WHERE c.device_id = n.device_id AND c.counter = n.counter
        AND c.result_id = n.result_id);
  RETURN NULL;
END $$"""
PG_TRIGGER = ("CREATE TRIGGER trg_results_signed_counter AFTER INSERT ON verification_results "
              "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION claim_signed_counters()")
SQLITE_TRIGGER = """
CREATE TRIGGER trg_results_signed_counter AFTER INSERT ON verification_results
FOR EACH ROW WHEN NEW.signature IS NOT NULL AND NEW.counter IS NOT NULL
BEGIN
  INSERT OR IGNORE INTO signed_counters (device_id, counter, result_id) VALUES (NEW.device_id, NEW.counter, NEW.result_id);
  SELECT RAISE(ABORT, 'counter of this device is stored for another result') WHERE NOT EXISTS (
    SELECT 1 FROM signed_counters WHERE device_id = NEW.device_id AND counter = NEW.counter AND result_id = NEW.result_id);
END"""
# The month (UTC) a UUIDv7 names, from its first 48 bits; other versions name none.
ID_MONTH = ("date_trunc('month', to_timestamp((('x' || substr(replace(result_id::text, '-', ''), 1, 12))::bit(48)"
            "::bigint) / 1000.0) AT TIME ZONE 'UTC')")


def _bound(year: int, month: int) -> str:
    ms = int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)
    h = f"{ms << 80:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _next(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _months(bind) -> list[tuple[int, int]]:
    """The months the stored v7 ids name (2000 to a year ahead), and the current month + AHEAD."""
    now = datetime.now(UTC)
    found = bind.execute(sa.text(
        f"SELECT DISTINCT {ID_MONTH} FROM {OLD} WHERE substr(result_id::text, 15, 1) = '7'")).scalars()
    months = {(m.year, m.month) for m in found if m is not None and 2000 <= m.year <= now.year + 1}
    y, m = now.year, now.month
    for _ in range(AHEAD + 1):
        months.add((y, m))
        y, m = _next(y, m)
    return sorted(months)


def _layout(bind) -> tuple[str, list[tuple[str, str]]]:
    """The table's columns (in order) and its indexes as (name, CREATE INDEX ..), but the primary key
    and 0005's unique index: read from the catalog, so whatever 0001-0007 made is carried over."""
    cols = bind.execute(sa.text(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'verification_results' ORDER BY ordinal_position")).scalars().all()
    indexes = [(name, ddl.replace(" ON ONLY ", " ON "))  # a partitioned table's index reads "ON ONLY"
               for name, ddl in bind.execute(sa.text(
                   "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                   "AND tablename = 'verification_results' ORDER BY indexname"))
               if name not in ("pk_verification_results", "uq_results_device_counter")]
    return ", ".join(cols), indexes


def _signed_counters() -> None:
    op.create_table(
        "signed_counters",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("counter", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("result_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "counter", name=op.f("pk_signed_counters")),
    )
    op.execute(f"INSERT INTO signed_counters (device_id, counter, result_id) SELECT device_id, counter, result_id "
               f"FROM verification_results WHERE {SIGNED} AND counter IS NOT NULL")


def upgrade() -> None:
    bind = op.get_bind()
    _signed_counters()
    op.drop_index("uq_results_device_counter", table_name="verification_results")
    if bind.dialect.name != "postgresql":
        op.execute(SQLITE_TRIGGER)
        return
    cols, indexes = _layout(bind)
    before = bind.execute(sa.text("SELECT count(*) FROM verification_results")).scalar_one()
    op.execute(f"ALTER TABLE verification_results RENAME TO {OLD}")
    op.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT pk_verification_results TO pk_{OLD}")
    for name, _ddl in indexes:
        op.execute(f"DROP INDEX {name}")  # the old table is only read from now on
    op.execute(f"CREATE TABLE verification_results (LIKE {OLD} INCLUDING DEFAULTS) PARTITION BY RANGE (result_id)")
    op.execute("ALTER TABLE verification_results ADD CONSTRAINT pk_verification_results PRIMARY KEY (result_id)")
    for _name, ddl in indexes:
        op.execute(ddl)
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    op.execute(f"CREATE TABLE {SCHEMA}.results_default PARTITION OF verification_results DEFAULT")
    for y, m in _months(bind):
        op.execute(f"CREATE TABLE {SCHEMA}.results_{y:04d}_{m:02d} PARTITION OF verification_results "
                   f"FOR VALUES FROM ('{_bound(y, m)}') TO ('{_bound(*_next(y, m))}')")
    op.execute(f"INSERT INTO verification_results ({cols}) SELECT {cols} FROM {OLD}")
    after = bind.execute(sa.text("SELECT count(*) FROM verification_results")).scalar_one()
    if after != before:  # pragma: no cover - the transaction rolls back, the old table stays
        raise RuntimeError(f"copied {after} of {before} verification results; nothing changed")
    op.execute(f"DROP TABLE {OLD}")
    op.execute(PG_FUNCTION)
    op.execute(PG_TRIGGER)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER trg_results_signed_counter ON verification_results")
        op.execute("DROP FUNCTION claim_signed_counters()")
        cols, indexes = _layout(bind)
        op.execute("ALTER TABLE verification_results RENAME TO verification_results_partitioned")
        op.execute("ALTER TABLE verification_results_partitioned RENAME CONSTRAINT pk_verification_results "
                   "TO pk_verification_results_partitioned")
        for name, _ddl in indexes:
            op.execute(f"DROP INDEX {name}")
        op.execute("CREATE TABLE verification_results (LIKE verification_results_partitioned INCLUDING DEFAULTS)")
        op.execute("ALTER TABLE verification_results ADD CONSTRAINT pk_verification_results PRIMARY KEY (result_id)")
        op.execute(f"INSERT INTO verification_results ({cols}) SELECT {cols} FROM verification_results_partitioned")
        op.execute("DROP TABLE verification_results_partitioned")  # and its partitions
        op.execute(f"DROP SCHEMA {SCHEMA}")
        for _name, ddl in indexes:
            op.execute(ddl)
    else:
        op.execute("DROP TRIGGER trg_results_signed_counter")
    op.create_index("uq_results_device_counter", "verification_results", ["device_id", "counter"], unique=True,
                    postgresql_where=sa.text(SIGNED), sqlite_where=sa.text(SIGNED))
    op.drop_table("signed_counters")
