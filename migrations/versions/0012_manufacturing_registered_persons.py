"""`manufacturing.registered_persons`: the people registered in the network (subject id and
centre), a local view of enrollment's `PatientRegistered`, so a donor-derived collection is
refused when its donor is not a registered person (issue 9 item 1: one COI binds the donor,
where there is one, and the recipient). Identities stay in enrollment: only the pseudonym.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE TABLE manufacturing.registered_persons (
        subject_id  text PRIMARY KEY,
        centre_id   text NOT NULL
    )""")


def downgrade() -> None:
    op.execute("DROP TABLE manufacturing.registered_persons")
