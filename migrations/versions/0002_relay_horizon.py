"""Relay without the table lock: a position is taken only after its transaction's id, times are
bounded, and rows a relay cannot publish are quarantined.

- `celltrail_next_position` assigns the writing transaction's id before it draws a position,
  for every writer of every events table: the relay's horizon (infra/relay.py) relies on it.
  The sequences keep CACHE 1 (a cached block would hand out low positions later).
- `occurred_at` and `recorded_at` must lie in [1900-01-01, 2200-01-01) UTC, the bounds of
  `contracts.base.Instant`; `-infinity` and `infinity` fall outside. NOT VALID: rows stored
  before this migration cannot be rewritten (append-only); a relay quarantines any it cannot
  publish.
- `relay_quarantine`: rows a relay skipped because they cannot be decoded or sent, with why.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SERVICE_SCHEMAS = ("enrollment", "manufacturing", "infusion", "assessment", "projection")
EARLIEST, LATEST = "1900-01-01 00:00:00+00", "2200-01-01 00:00:00+00"

NEXT_POSITION = """
CREATE FUNCTION public.celltrail_next_position(seq regclass) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_current_xact_id();  -- the transaction id exists before the position is drawn
    RETURN nextval(seq);
END $$
"""

PER_SCHEMA = (
    "ALTER SEQUENCE {s}.events_position_seq CACHE 1",
    "ALTER TABLE {s}.events ALTER COLUMN position"
    " SET DEFAULT public.celltrail_next_position('{s}.events_position_seq')",
    "ALTER TABLE {s}.events ADD CONSTRAINT events_occurred_at_in_range"
    f" CHECK (occurred_at >= '{EARLIEST}' AND occurred_at < '{LATEST}') NOT VALID",
    "ALTER TABLE {s}.events ADD CONSTRAINT events_recorded_at_in_range"
    f" CHECK (recorded_at >= '{EARLIEST}' AND recorded_at < '{LATEST}') NOT VALID",
    """CREATE TABLE {s}.relay_quarantine (
        relay           text NOT NULL,
        position        bigint NOT NULL,
        error           text NOT NULL,
        quarantined_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (relay, position)
    )""",
)


def upgrade() -> None:
    op.execute(NEXT_POSITION)
    for schema in SERVICE_SCHEMAS:
        for statement in PER_SCHEMA:
            op.execute(statement.format(s=schema))


def downgrade() -> None:
    for schema in SERVICE_SCHEMAS:
        op.execute(f"DROP TABLE {schema}.relay_quarantine")
        op.execute(f"ALTER TABLE {schema}.events DROP CONSTRAINT events_recorded_at_in_range")
        op.execute(f"ALTER TABLE {schema}.events DROP CONSTRAINT events_occurred_at_in_range")
        op.execute(f"ALTER TABLE {schema}.events ALTER COLUMN position"
                   f" SET DEFAULT nextval('{schema}.events_position_seq')")
    op.execute("DROP FUNCTION public.celltrail_next_position(regclass)")
