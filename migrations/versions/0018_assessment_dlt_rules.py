"""DLTs from adverse events (issue 11 item 2): `assessment.escalations` keeps each dose-escalation
subject's DLT definition as enrollment's `SubjectEnrolled` carried it (the programme version's
`escalation.dlt_rule`; NULL: none, the investigator's evaluation alone).

Revision ID: 0018
Revises: 0017
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE assessment.escalations ADD COLUMN dlt_rule jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE assessment.escalations DROP COLUMN dlt_rule")
