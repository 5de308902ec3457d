"""`infusion.subject_centres`, `assessment.subject_centres`: each service's local view of
enrollment's `SubjectEnrolled` (subject -> treating centre), so a command naming only a
subject is authorised against the subject's centre (issue 8 item 3; services/kernel/subjects.py).
Filled by the services' consumers from the enrollment topic, from its start: a database
migrated after subjects were enrolled learns them by replay.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMAS = ("infusion", "assessment")


def upgrade() -> None:
    for schema in SCHEMAS:
        op.execute(f"""CREATE TABLE {schema}.subject_centres (
            subject_id  text PRIMARY KEY,
            centre_id   text NOT NULL
        )""")


def downgrade() -> None:
    for schema in SCHEMAS:
        op.execute(f"DROP TABLE {schema}.subject_centres")
