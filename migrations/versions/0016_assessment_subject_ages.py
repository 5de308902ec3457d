"""Observations (issue 11): `assessment.subject_ages` keeps each enrolled subject's age in
completed years on the day of its enrolment (carried by enrollment's `SubjectEnrolled`; 90
stands for 90 or older; NULL: not known), from which ICANS grading judges the encephalopathy
tool (the ICE score from 12 years, the CAPD below).

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE TABLE assessment.subject_ages (
        subject_id   text PRIMARY KEY,
        enrolled_on  date NOT NULL,
        age_years    integer CHECK (age_years BETWEEN 0 AND 90)
    )""")


def downgrade() -> None:
    op.execute("DROP TABLE assessment.subject_ages")
