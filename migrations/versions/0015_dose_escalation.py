"""Dose escalation (issue 10 item 3): `assessment.escalations` keeps, for each subject of a
programme with a dose escalation, the level its design assigned and the programme's DLT
window (carried by enrollment's `SubjectEnrolled`), so a DLT evaluation is judged by them.
Infusion keeps the assigned level with the subject's treatment
(`infusion.subject_treatments.dose_level`): a cell dose is prescribed at that level. The
escalation itself is enrollment's stream `escalation-<programme>`.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE TABLE assessment.escalations (
        subject_id       text PRIMARY KEY,
        programme_id     text NOT NULL,
        dose_level       integer NOT NULL,
        dlt_window_days  integer NOT NULL CHECK (dlt_window_days > 0)
    )""")
    op.execute("ALTER TABLE infusion.subject_treatments ADD COLUMN dose_level integer")


def downgrade() -> None:
    op.execute("ALTER TABLE infusion.subject_treatments DROP COLUMN dose_level")
    op.execute("DROP TABLE assessment.escalations")
