"""Direct identifiers encrypted at rest (docs/design.md, "Identity").

`enrollment.patient_identity` gains a blind index of the record number and one AEAD
ciphertext per identifier; the plaintext columns become nullable. A migration has no key,
so it cannot encrypt rows already stored: the application writes only the encrypted form,
and `celltrail identities encrypt` encrypts any remaining plaintext rows with the configured
key and nulls their plaintext. A CHECK keeps each row wholly in one form.

`enrollment.identity_keys` holds each person's data key, wrapped by a key of the configured
keyring (`key_id`); erasure deletes it with the row (crypto-shredding: a copy of the
ciphertexts kept anywhere else cannot be read without it).

Uniqueness of a record number at a centre moves to (centre_id, record_index); the old
constraint stays for plaintext rows until they are encrypted (NULLs do not collide).

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = (
    "ALTER TABLE enrollment.patient_identity"
    " ALTER COLUMN hospital_record_number DROP NOT NULL,"
    " ALTER COLUMN family_name DROP NOT NULL,"
    " ALTER COLUMN given_name DROP NOT NULL,"
    " ALTER COLUMN date_of_birth DROP NOT NULL,"
    " ADD COLUMN record_index bytea CHECK (length(record_index) = 32),"
    " ADD COLUMN hospital_record_number_sealed bytea,"
    " ADD COLUMN family_name_sealed bytea,"
    " ADD COLUMN given_name_sealed bytea,"
    " ADD COLUMN date_of_birth_sealed bytea",
    "ALTER TABLE enrollment.patient_identity ADD CONSTRAINT patient_identity_one_form CHECK ("
    " (num_nulls(record_index, hospital_record_number_sealed, family_name_sealed, given_name_sealed,"
    "            date_of_birth_sealed) = 0"
    "  AND num_nulls(hospital_record_number, family_name, given_name, date_of_birth) = 4)"
    " OR (num_nulls(record_index, hospital_record_number_sealed, family_name_sealed, given_name_sealed,"
    "               date_of_birth_sealed) = 5"
    "  AND num_nulls(hospital_record_number, family_name, given_name, date_of_birth) = 0))",
    "ALTER TABLE enrollment.patient_identity ADD CONSTRAINT patient_identity_centre_record_index_key"
    " UNIQUE (centre_id, record_index)",
    """CREATE TABLE enrollment.identity_keys (
        subject_id   text PRIMARY KEY REFERENCES enrollment.patient_identity (subject_id) ON DELETE CASCADE,
        key_id       text NOT NULL,
        wrapped_key  bytea NOT NULL,
        wrapped_at   timestamptz NOT NULL DEFAULT clock_timestamp()
    )""",
)


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    # Encrypted rows cannot go back to plaintext without the key: refuse rather than lose them.
    op.execute("""
        DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM enrollment.patient_identity WHERE record_index IS NOT NULL) THEN
                RAISE EXCEPTION 'encrypted identities exist: downgrading past 0005 would lose them';
            END IF;
        END $$""")
    op.execute("DROP TABLE enrollment.identity_keys")
    op.execute("ALTER TABLE enrollment.patient_identity DROP CONSTRAINT patient_identity_centre_record_index_key,"
               " DROP CONSTRAINT patient_identity_one_form,"
               " DROP COLUMN record_index, DROP COLUMN hospital_record_number_sealed,"
               " DROP COLUMN family_name_sealed, DROP COLUMN given_name_sealed, DROP COLUMN date_of_birth_sealed,"
               " ALTER COLUMN hospital_record_number SET NOT NULL, ALTER COLUMN family_name SET NOT NULL,"
               " ALTER COLUMN given_name SET NOT NULL, ALTER COLUMN date_of_birth SET NOT NULL")
