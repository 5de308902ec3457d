"""Consumer offsets stored with the effects, in every service schema (the one consumer,
infra/runtime/consumer.py); the projection's own offsets and applied-event set move into
the common tables.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The schemas as they stood at this revision (a migration is history: it never reads code).
SERVICE_SCHEMAS = ("enrollment", "manufacturing", "infusion", "assessment", "projection")


def upgrade() -> None:
    for s in SERVICE_SCHEMAS:
        op.execute(f"""
            CREATE TABLE {s}.consumer_offsets (
                consumer     text NOT NULL,
                topic        text NOT NULL,
                partition    integer NOT NULL CHECK (partition >= 0),
                next_offset  bigint NOT NULL CHECK (next_offset >= 0),
                PRIMARY KEY (consumer, topic, partition)
            )""")
    op.execute("INSERT INTO projection.consumer_offsets (consumer, topic, partition, next_offset)"
               " SELECT 'projection', topic, partition, next_offset FROM projection.offsets")
    op.execute("INSERT INTO projection.inbox (consumer, message_id)"
               " SELECT 'projection', event_id FROM projection.applied ON CONFLICT DO NOTHING")
    op.execute("DROP TABLE projection.offsets")
    op.execute("DROP TABLE projection.applied")


def downgrade() -> None:
    op.execute("CREATE TABLE projection.applied (event_id uuid PRIMARY KEY)")
    op.execute("CREATE TABLE projection.offsets (topic text NOT NULL, partition integer NOT NULL,"
               " next_offset bigint NOT NULL, PRIMARY KEY (topic, partition))")
    op.execute("INSERT INTO projection.offsets SELECT topic, partition, next_offset FROM projection.consumer_offsets"
               " WHERE consumer = 'projection'")
    op.execute("INSERT INTO projection.applied SELECT message_id FROM projection.inbox WHERE consumer = 'projection'")
    for s in SERVICE_SCHEMAS:
        op.execute(f"DROP TABLE {s}.consumer_offsets")
