"""`infusion.second_infusion_policies`: each enrolled subject's second-infusion policy, as its
programme's version held it when the subject was enrolled (carried by enrollment's
`SubjectEnrolled`, issue 10 item 5), so infusion decides at day 28 and gates a second
infusion by the subject's own policy.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE TABLE infusion.second_infusion_policies (
        subject_id         text PRIMARY KEY,
        programme_id       text NOT NULL,
        programme_version  integer,
        policy             jsonb NOT NULL
    )""")


def downgrade() -> None:
    op.execute("DROP TABLE infusion.second_infusion_policies")
