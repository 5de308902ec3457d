"""asyncpg adapter for the Identities port: `enrollment.patient_identity`, encrypted at rest.

Each row holds the centre id (not identifying by itself), a blind index of the record number
and one AES-256-GCM ciphertext per identifier, sealed under the person's own data key;
`enrollment.identity_keys` holds that data key wrapped by the keyring's current key
(identity_crypto.py says how). Rows written before migration 0005 may still be plaintext
until `celltrail identities encrypt` (`encrypt_all`) seals them; they are read and found
as they are meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import asyncpg

from services.enrollment.adapters.identity_crypto import (
    IdentityUnreadable,
    Keyring,
    new_data_key,
    open_field,
    seal_field,
)
from services.enrollment.application.ports import Identity, IdentityAlreadyRecorded

FIELDS = ("hospital_record_number", "family_name", "given_name", "date_of_birth")
_SEALED = ", ".join(f"{f}_sealed" for f in FIELDS)
_PLAIN = ", ".join(FIELDS)


@dataclass(frozen=True)
class EncryptReport:
    encrypted: int  # plaintext rows sealed
    rewrapped: int  # rows moved from an older key of the ring to the current one


_SELECT = (f"SELECT p.subject_id, p.centre_id, {', '.join('p.' + f for f in FIELDS)}, p.record_index, "
           f"{', '.join('p.' + f + '_sealed' for f in FIELDS)}, k.key_id, k.wrapped_key"
           " FROM enrollment.patient_identity p LEFT JOIN enrollment.identity_keys k USING (subject_id)")


class PgIdentities:
    def __init__(self, conn: asyncpg.Connection, keyring: Keyring, ahead: Sequence[str] = ()) -> None:
        """`ahead`: subjects whose rows the first `get` reads along with its own (`prefetch`)."""
        self.conn, self.keyring = conn, keyring
        self._ahead = tuple(ahead)
        # rows read ahead by `prefetch` (None: none kept), for the life of this adapter: one
        # fetch's transaction, in which nothing here changes them (registration and erasure
        # are HTTP requests, each in its own transaction)
        self._rows: dict[str, asyncpg.Record | None] = {}

    async def find(self, centre_id: str, hospital_record_number: str) -> str | None:
        return await self.conn.fetchval(
            "SELECT subject_id FROM enrollment.patient_identity WHERE centre_id = $1"
            " AND (record_index = ANY($2::bytea[]) OR hospital_record_number = $3)",
            centre_id, self.keyring.blind_indexes(centre_id, hospital_record_number), hospital_record_number)

    async def add(self, subject_id: str, centre_id: str, hospital_record_number: str, family_name: str,
                  given_name: str, date_of_birth: date) -> None:
        self._rows.pop(subject_id, None)  # read again after this
        key, data_key = self.keyring.current, new_data_key()
        values = (hospital_record_number, family_name, given_name, date_of_birth.isoformat())
        # ON CONFLICT rather than a unique violation: the refusal leaves the transaction usable.
        kept = await self.conn.fetchval(
            f"INSERT INTO enrollment.patient_identity (subject_id, centre_id, record_index, {_SEALED})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING 1",
            subject_id, centre_id, key.blind_index(centre_id, hospital_record_number),
            *(seal_field(data_key, subject_id, f, v) for f, v in zip(FIELDS, values)))
        if kept is None:
            # No identifier in the message: it may be logged.
            raise IdentityAlreadyRecorded(f"an identity is already kept for subject {subject_id} or for this"
                                          f" record number at {centre_id}")
        await self.conn.execute(
            "INSERT INTO enrollment.identity_keys (subject_id, key_id, wrapped_key) VALUES ($1, $2, $3)",
            subject_id, key.key_id, key.wrap(subject_id, data_key))

    async def prefetch(self, subject_ids: Sequence[str]) -> None:
        """Read the rows of `subject_ids` with one query, for `get` to open when asked: what
        a fetch of enrolments needs (each one's date of birth), instead of a round trip per
        command. Nothing is decrypted until `get` asks for it."""
        wanted = sorted({s for s in subject_ids if s not in self._rows})
        if not wanted:
            return
        rows = {r["subject_id"]: r for r in await self.conn.fetch(_SELECT + " WHERE p.subject_id = ANY($1::text[])",
                                                                   wanted)}
        self._rows.update({s: rows.get(s) for s in wanted})

    async def get(self, subject_id: str) -> Identity | None:
        if self._ahead:
            ahead, self._ahead = self._ahead, ()
            await self.prefetch([*ahead, subject_id])
        if subject_id in self._rows:
            row = self._rows[subject_id]
        else:
            row = await self.conn.fetchrow(_SELECT + " WHERE p.subject_id = $1", subject_id)
        if row is None:
            return None
        if row["record_index"] is None:  # a row from before 0005, not yet encrypted
            return Identity(row["centre_id"], *(row[f] for f in FIELDS))
        if row["wrapped_key"] is None:
            raise IdentityUnreadable(f"subject {subject_id}: the data key of this identity is gone (erased)")
        data_key = self.keyring.get(row["key_id"]).unwrap(subject_id, row["wrapped_key"])
        record, family, given, born = (open_field(data_key, subject_id, f, row[f + "_sealed"]) for f in FIELDS)
        return Identity(row["centre_id"], record, family, given, date.fromisoformat(born))

    async def erase(self, subject_id: str) -> bool:
        self._rows.pop(subject_id, None)
        await self.conn.execute("DELETE FROM enrollment.identity_keys WHERE subject_id = $1", subject_id)
        return await self.conn.fetchval(
            "DELETE FROM enrollment.patient_identity WHERE subject_id = $1 RETURNING true", subject_id) is not None

    async def encrypt_all(self) -> EncryptReport:
        """Seal every plaintext row (nulling its plaintext) and move every row wrapped under an
        older key of the ring to the current key (re-wrapping its data key and re-computing
        its blind index; the ciphertexts stay). Idempotent; run in one transaction."""
        key = self.keyring.current
        plain = await self.conn.fetch(
            f"SELECT subject_id, centre_id, {_PLAIN} FROM enrollment.patient_identity"
            " WHERE record_index IS NULL ORDER BY subject_id FOR UPDATE")
        for row in plain:
            sid, data_key = row["subject_id"], new_data_key()
            values = (row["hospital_record_number"], row["family_name"], row["given_name"],
                      row["date_of_birth"].isoformat())
            await self.conn.execute(
                "UPDATE enrollment.patient_identity SET record_index = $2,"
                " hospital_record_number_sealed = $3, family_name_sealed = $4, given_name_sealed = $5,"
                " date_of_birth_sealed = $6, hospital_record_number = NULL, family_name = NULL,"
                " given_name = NULL, date_of_birth = NULL WHERE subject_id = $1",
                sid, key.blind_index(row["centre_id"], values[0]),
                *(seal_field(data_key, sid, f, v) for f, v in zip(FIELDS, values)))
            await self.conn.execute(
                "INSERT INTO enrollment.identity_keys (subject_id, key_id, wrapped_key) VALUES ($1, $2, $3)",
                sid, key.key_id, key.wrap(sid, data_key))
        stale = await self.conn.fetch(
            "SELECT p.subject_id, p.centre_id, p.hospital_record_number_sealed, k.key_id, k.wrapped_key"
            " FROM enrollment.patient_identity p JOIN enrollment.identity_keys k USING (subject_id)"
            " WHERE k.key_id <> $1 ORDER BY p.subject_id FOR UPDATE", key.key_id)
        for row in stale:
            sid = row["subject_id"]
            data_key = self.keyring.get(row["key_id"]).unwrap(sid, row["wrapped_key"])
            record = open_field(data_key, sid, "hospital_record_number", row["hospital_record_number_sealed"])
            await self.conn.execute("UPDATE enrollment.identity_keys SET key_id = $2, wrapped_key = $3,"
                                    " wrapped_at = clock_timestamp() WHERE subject_id = $1",
                                    sid, key.key_id, key.wrap(sid, data_key))
            await self.conn.execute("UPDATE enrollment.patient_identity SET record_index = $2 WHERE subject_id = $1",
                                    sid, key.blind_index(row["centre_id"], record))
        return EncryptReport(encrypted=len(plain), rewrapped=len(stale))
