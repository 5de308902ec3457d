"""Dosing at infusion (issue 10 item 4): `infusion.subject_treatments` keeps each enrolled
subject's programme version's dosing sections (the lymphodepletion regimen and its window,
the dose levels, the cell dose's tolerance), carried by enrollment's `SubjectEnrolled`; and
`infusion.released_products` keeps each release's measured content (viable cells per mL and
volume), from which a cell-dose prescription gives the volume to infuse. Releases learnt
before this revision have no content: a bag of theirs is refused a prescription
(`UNIT_CONTENT_UNKNOWN`), as is any bag whose release record has not reached infusion.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE TABLE infusion.subject_treatments (
        subject_id         text PRIMARY KEY,
        programme_id       text NOT NULL,
        programme_version  integer NOT NULL,
        dosing             jsonb NOT NULL
    )""")
    op.execute("ALTER TABLE infusion.released_products"
               " ADD COLUMN viable_cells_per_ml double precision CHECK (viable_cells_per_ml > 0),"
               " ADD COLUMN volume_ml double precision CHECK (volume_ml > 0)")


def downgrade() -> None:
    op.execute("ALTER TABLE infusion.released_products DROP COLUMN viable_cells_per_ml, DROP COLUMN volume_ml")
    op.execute("DROP TABLE infusion.subject_treatments")
