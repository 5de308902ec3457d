"""Idempotency keys (issue 12 item 4): `<service>.command_keys` keeps, per service, the
outcome of every command submitted with an idempotency key, so a resubmission under the same
key gets the original outcome and changes nothing.

A command from a command topic (`CommandEnvelope.idempotency_key`) is recorded in the same
transaction as the events it caused (infra/runtime/idempotency.py): `accepted` with the
streams and types of those events, or `refused` with the `CommandRejected` code and reason.
A request to an HTTP endpoint that submits a command, with an `Idempotency-Key` header, is
claimed `in_progress` before its handler runs and then holds the answer given
(`http_status`, `http_body`). `fingerprint` is the SHA-256 of what was submitted (command
type, actor and canonical payload; or the route, actor and body): the same key with another
fingerprint is refused as IDEMPOTENCY_KEY_REUSED.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# The schemas as they stood at this revision (a migration is history: it never reads code).
SERVICE_SCHEMAS = ("enrollment", "manufacturing", "infusion", "assessment", "projection")


def upgrade() -> None:
    for s in SERVICE_SCHEMAS:
        op.execute(f"""
            CREATE TABLE {s}.command_keys (
                key           text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 200),
                command_type  text NOT NULL,   -- or the HTTP route, 'POST /patients'
                fingerprint   text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{{64}}$'),
                actor         text NOT NULL,
                command_id    uuid,            -- the command whose outcome this is (a topic's)
                outcome       text NOT NULL CHECK (outcome IN ('accepted', 'refused', 'in_progress')),
                reason_code   text,
                reason        text,
                events        jsonb NOT NULL DEFAULT '[]'::jsonb,  -- [{"stream_id", "event_type"}]
                http_status   integer,
                http_body     bytea,
                recorded_at   timestamptz NOT NULL DEFAULT now()
            )""")


def downgrade() -> None:
    for s in SERVICE_SCHEMAS:
        op.execute(f"DROP TABLE {s}.command_keys")
