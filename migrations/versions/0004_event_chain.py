"""The tamper-evident log: `<schema>.event_chain`, one link per event, in every service schema.

A link is (position, previous_hash, hash, payload_hash), SHA-256 each, computed by the relay
after the event committed, in position order (infra/runtime/chain.py documents the
canonical encoding). Append-only like the events table: the same function refuses
UPDATE, DELETE and TRUNCATE. No foreign key to the events: a link must outlive its event as
evidence that the event was there.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The schemas as they stood at this revision (a migration is history: it never reads code).
SERVICE_SCHEMAS = ("enrollment", "manufacturing", "infusion", "assessment", "projection")

PER_SCHEMA = (
    """CREATE TABLE {s}.event_chain (
        position       bigint PRIMARY KEY,
        previous_hash  bytea NOT NULL CHECK (length(previous_hash) = 32),
        hash           bytea NOT NULL CHECK (length(hash) = 32),
        payload_hash   bytea NOT NULL CHECK (length(payload_hash) = 32),
        chained_at     timestamptz NOT NULL DEFAULT clock_timestamp()
    )""",
    "CREATE TRIGGER event_chain_refuse_update_delete BEFORE UPDATE OR DELETE ON {s}.event_chain"
    " FOR EACH ROW EXECUTE FUNCTION public.celltrail_refuse_event_change()",
    "CREATE TRIGGER event_chain_refuse_truncate BEFORE TRUNCATE ON {s}.event_chain"
    " FOR EACH STATEMENT EXECUTE FUNCTION public.celltrail_refuse_event_change()",
)


def upgrade() -> None:
    for schema in SERVICE_SCHEMAS:
        for statement in PER_SCHEMA:
            op.execute(statement.format(s=schema))


def downgrade() -> None:
    for schema in SERVICE_SCHEMAS:
        op.execute(f"DROP TABLE {schema}.event_chain")
