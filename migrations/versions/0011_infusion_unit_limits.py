"""`infusion.units`: each unit's limits of use and how it was released (issue 9 item 4), for
the bedside gate: the end of its shelf life (`expires_at`) and its thaw-to-infusion limit
(`use_within_minutes`), from `QcResultsRecorded` and `ReleaseCertified`; when it was thawed or
prepared (`prepared_at`, the custody step `prepared`); and whether it was released out of
specification on the exceptional-release path (`released_out_of_specification`, EU GMP Part IV
11.5), which the gate lets through, flagged, where an out-of-specification unit not so released
stays a no-go. Rows from before are left without limits: the events that carry them are new.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""ALTER TABLE infusion.units
        ADD COLUMN expires_at                    timestamptz,
        ADD COLUMN use_within_minutes            integer CHECK (use_within_minutes >= 1),
        ADD COLUMN prepared_at                   timestamptz,
        ADD COLUMN released_out_of_specification boolean NOT NULL DEFAULT false""")


def downgrade() -> None:
    op.execute("""ALTER TABLE infusion.units
        DROP COLUMN released_out_of_specification,
        DROP COLUMN prepared_at,
        DROP COLUMN use_within_minutes,
        DROP COLUMN expires_at""")
