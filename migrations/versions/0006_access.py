"""The `access` schema: organisations, principals, their memberships (roles held at an
organisation) and credentials, and the append-only audit of every change to them (EU GMP
Annex 11 §12.3: creation, change and cancellation of access authorisations are recorded).

Secrets are stored only as argon2id hashes (the CHECK refuses anything else). Roles are not
CHECKed here: their list is the contract's (contracts/access.py) and grows; the code
refuses unknown ones. `access` is no service's schema: it has no event store or relay.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STATEMENTS = (
    "CREATE SCHEMA access",
    """CREATE TABLE access.organisations (
        org_id      text PRIMARY KEY,
        kind        text NOT NULL CHECK (kind IN ('centre', 'facility', 'network')),
        name        text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
    )""",
    """CREATE TABLE access.principals (
        principal_id  text PRIMARY KEY,
        kind          text NOT NULL CHECK (kind IN ('person', 'system')),
        printed_name  text NOT NULL,
        disabled      boolean NOT NULL DEFAULT false,
        created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
    )""",
    """CREATE TABLE access.memberships (
        principal_id  text NOT NULL REFERENCES access.principals,
        org_id        text NOT NULL REFERENCES access.organisations,
        role          text NOT NULL,
        granted_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (principal_id, org_id, role)
    )""",
    # credential_id: the API key's id (the prefix of the key), or 'password:<principal>'.
    """CREATE TABLE access.credentials (
        credential_id  text PRIMARY KEY,
        principal_id   text NOT NULL REFERENCES access.principals,
        kind           text NOT NULL CHECK (kind IN ('password', 'api_key')),
        secret_hash    text NOT NULL CHECK (secret_hash LIKE '$argon2id$%'),
        disabled       boolean NOT NULL DEFAULT false,
        created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
        disabled_at    timestamptz
    )""",
    "CREATE INDEX credentials_principal ON access.credentials (principal_id)",
    """CREATE TABLE access.audit_log (
        position      bigserial PRIMARY KEY,
        recorded_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
        actor         text NOT NULL,
        change        text NOT NULL,
        principal_id  text,
        org_id        text,
        detail        jsonb NOT NULL DEFAULT '{}'
    )""",
    "CREATE TRIGGER audit_log_refuse_update_delete BEFORE UPDATE OR DELETE ON access.audit_log"
    " FOR EACH ROW EXECUTE FUNCTION public.celltrail_refuse_event_change()",
    "CREATE TRIGGER audit_log_refuse_truncate BEFORE TRUNCATE ON access.audit_log"
    " FOR EACH STATEMENT EXECUTE FUNCTION public.celltrail_refuse_event_change()",
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP SCHEMA access CASCADE")
