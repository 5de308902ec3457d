"""`access.organisations.fin`: an organisation's ISBT 128 facility identification number
(one letter, four digits; assigned by ICCBBA), under which CellTrail issues the
chain-of-identity ids of the starting material it collects (issue 9 item 1,
docs/identifiers.md). Optional and unique.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE access.organisations ADD COLUMN fin text UNIQUE CHECK (fin ~ '^[A-Z][0-9]{4}$')")


def downgrade() -> None:
    op.execute("ALTER TABLE access.organisations DROP COLUMN fin")
