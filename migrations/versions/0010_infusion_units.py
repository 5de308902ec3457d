"""`infusion.units`: the infusion service's view of manufacturing's units (issue 9 item 5):
whose each bag is, who holds it and its custody state, from `ProductUnitsRegistered`,
`CustodyStepRecorded`, `ProductReleased`, `ExcursionDetected` and `QaDispositionRecorded`, so the bedside gate answers from the service's
own state. Filled by infusion's consumer from the manufacturing topic, from its start.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE TABLE infusion.units (
        unit_id               text PRIMARY KEY,
        coi_id                text NOT NULL,
        subject_id            text NOT NULL,
        state                 text NOT NULL,
        holder                text NOT NULL,
        out_of_specification  boolean NOT NULL DEFAULT false,
        quarantined           boolean NOT NULL DEFAULT false
    )""")
    op.execute("CREATE INDEX units_by_coi ON infusion.units (coi_id)")


def downgrade() -> None:
    op.execute("DROP TABLE infusion.units")
