"""Event store, relay checkpoint and inbox in every service schema; service-owned tables.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SERVICE_SCHEMAS = ("enrollment", "manufacturing", "infusion", "assessment", "projection")

FORBID_CHANGE = """
CREATE OR REPLACE FUNCTION public.celltrail_refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % on %.% is refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
"""

EVENT_STORE = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE {s}.events (
    position        bigserial PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    stream_id       text NOT NULL,
    stream_version  integer NOT NULL CHECK (stream_version >= 1),
    event_type      text NOT NULL,
    schema_version  integer NOT NULL CHECK (schema_version >= 1),
    subject_id      text,
    payload         jsonb NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    correlation_id  uuid NOT NULL,
    causation_id    uuid,
    actor           text NOT NULL,
    centre_id       text,
    CONSTRAINT events_stream_version_unique UNIQUE (stream_id, stream_version)
);
CREATE TRIGGER events_refuse_update_delete BEFORE UPDATE OR DELETE ON {s}.events
    FOR EACH ROW EXECUTE FUNCTION public.celltrail_refuse_event_change();
CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON {s}.events
    FOR EACH STATEMENT EXECUTE FUNCTION public.celltrail_refuse_event_change();
-- How far the outbox relay has published this store to Kafka.
CREATE TABLE {s}.relay_checkpoint (
    relay     text PRIMARY KEY,
    position  bigint NOT NULL
);
-- Messages this service's consumers have applied, written in the same transaction as the
-- effect: a redelivered message finds its row and changes nothing.
CREATE TABLE {s}.inbox (
    consumer     text NOT NULL,
    message_id   uuid NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (consumer, message_id)
);
"""

SERVICE_TABLES = """
-- enrollment keeps the only link between a pseudonymous subject id and the person.
CREATE TABLE enrollment.patient_identity (
    subject_id              text PRIMARY KEY,
    centre_id               text NOT NULL,
    hospital_record_number  text NOT NULL,
    family_name             text NOT NULL,
    given_name              text NOT NULL,
    date_of_birth           date NOT NULL,
    registered_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (centre_id, hospital_record_number)
);

-- Local views of other contexts' events, built by this service's consumers.
CREATE TABLE manufacturing.enrolled_subjects (
    subject_id    text NOT NULL,
    programme_id  text NOT NULL,
    centre_id     text NOT NULL,
    enrolled_on   date NOT NULL,
    PRIMARY KEY (subject_id, programme_id)
);
CREATE TABLE infusion.released_products (
    coi_id       text PRIMARY KEY,
    subject_id   text NOT NULL,
    lot_number   text NOT NULL,
    released_at  timestamptz NOT NULL
);
CREATE TABLE assessment.infusions (
    subject_id        text NOT NULL,
    infusion_number   integer NOT NULL,
    infused_at        timestamptz NOT NULL,
    infused_on        date NOT NULL,  -- the site's local date: study day 0
    PRIMARY KEY (subject_id, infusion_number)
);

-- projection read models: disposable, rebuilt from the topics by `celltrail rebuild`.
CREATE TABLE projection.subject_state (
    subject_id     text PRIMARY KEY,
    programme_id   text,
    phase          text NOT NULL,
    view           jsonb NOT NULL
);
CREATE TABLE projection.applied (
    event_id  uuid PRIMARY KEY
);
-- Per-partition offsets stored with the read models, in the same transaction.
CREATE TABLE projection.offsets (
    topic        text NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""


def _script(sql: str) -> None:
    """asyncpg runs one statement per call; these scripts hold no dollar-quoted bodies."""
    for statement in sql.split(";\n"):
        if statement.strip() and not all(l.strip().startswith("--") or not l.strip() for l in statement.splitlines()):
            op.execute(statement)


def upgrade() -> None:
    op.execute(FORBID_CHANGE)
    for schema in SERVICE_SCHEMAS:
        _script(EVENT_STORE.format(s=schema))
    _script(SERVICE_TABLES)


def downgrade() -> None:
    for schema in SERVICE_SCHEMAS:
        op.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    op.execute("DROP FUNCTION IF EXISTS public.celltrail_refuse_event_change()")
