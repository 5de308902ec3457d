"""`access.refusals`: every request the HTTP edge refused, append-only (issue 8 item 7: every
refusal is recorded, at the HTTP edge too).

One row per refused request: who (the authenticated principal, or none with the kind of
credential presented), which service, method, route and path, when, the status, code and
reason, and the subject, centre or facility the request was about when known. Written by
`infra.runtime.edge` for 401, 403 and the domain's refusals (e.g. RegisterPatient for an
unknown centre); read by an auditor (`celltrail access refusals`). Its triggers refuse
UPDATE, DELETE and TRUNCATE, as the event tables' and the access audit's do.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STATEMENTS = (
    """CREATE TABLE access.refusals (
        position      bigserial PRIMARY KEY,
        recorded_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
        service       text NOT NULL,
        method        text NOT NULL,
        route         text NOT NULL,
        path          text NOT NULL,
        status        smallint NOT NULL CHECK (status BETWEEN 400 AND 499),
        code          text NOT NULL,
        reason        text NOT NULL,
        principal_id  text,
        credential    text NOT NULL CHECK (credential IN ('none', 'bearer', 'api_key', 'both', 'malformed')),
        subject_id    text,
        centre_id     text,
        facility_id   text
    )""",
    "CREATE INDEX refusals_subject ON access.refusals (subject_id) WHERE subject_id IS NOT NULL",
    "CREATE INDEX refusals_principal ON access.refusals (principal_id) WHERE principal_id IS NOT NULL",
    "CREATE TRIGGER refusals_refuse_update_delete BEFORE UPDATE OR DELETE ON access.refusals"
    " FOR EACH ROW EXECUTE FUNCTION public.celltrail_refuse_event_change()",
    "CREATE TRIGGER refusals_refuse_truncate BEFORE TRUNCATE ON access.refusals"
    " FOR EACH STATEMENT EXECUTE FUNCTION public.celltrail_refuse_event_change()",
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE access.refusals")
