"""asyncpg adapter for the Identities port: enrollment.patient_identity."""

from __future__ import annotations

from datetime import date

import asyncpg

from services.enrollment.application.ports import IdentityAlreadyRecorded


class PgIdentities:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def find(self, centre_id: str, hospital_record_number: str) -> str | None:
        return await self.conn.fetchval(
            "SELECT subject_id FROM enrollment.patient_identity WHERE centre_id = $1 AND hospital_record_number = $2",
            centre_id, hospital_record_number)

    async def add(self, subject_id: str, centre_id: str, hospital_record_number: str, family_name: str,
                  given_name: str, date_of_birth: date) -> None:
        # ON CONFLICT rather than a unique violation: the refusal leaves the transaction usable.
        kept = await self.conn.fetchval(
            "INSERT INTO enrollment.patient_identity (subject_id, centre_id, hospital_record_number,"
            " family_name, given_name, date_of_birth) VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            subject_id, centre_id, hospital_record_number, family_name, given_name, date_of_birth)
        if kept is None:
            # No identifier in the message: it may be logged.
            raise IdentityAlreadyRecorded(f"an identity is already kept for subject {subject_id} or for this"
                                          f" record number at {centre_id}")
