"""Identifier types. Only pseudonymous subject ids ever travel on Kafka."""

from typing import Annotated

from pydantic import BeforeValidator, StringConstraints

from contracts import isbt128

# Issued by enrollment at registration; random, so it carries nothing about the patient.
SubjectId = Annotated[str, StringConstraints(pattern=r"^S-[0-9A-F]{12}$")]
CentreId = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$")]
ProgrammeId = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9-]{1,39}$")]
# Chain-of-identity id printed on the apheresis bag label at collection, carried unchanged
# through manufacturing to the bedside: ISBT 128-shaped (contracts/isbt128.py,
# docs/identifiers.md). What every entry point accepts: compact or as printed on the label,
# kept compact; a wrong check character (a mistyped or misread id) is refused, saying so.
ISBT128_PATTERN = r"^[A-Z][0-9]{12}[0-9A-Z*]$"
CoiId = Annotated[str, BeforeValidator(isbt128.normalise), StringConstraints(pattern=ISBT128_PATTERN)]
# A unit (bag): its COI and an ISBT 128-style division code, `00` for the starting material
# (contracts/isbt128.py); compact or as printed, kept compact; a mistyped COI part is refused.
UnitId = Annotated[str, BeforeValidator(isbt128.normalise_unit),
                   StringConstraints(pattern=r"^[A-Z][0-9]{12}[0-9A-Z*](?:00|[A-Z][0-9a-z])$")]
# A COI as an event recorded it: ISBT 128-shaped, or one recorded before CellTrail checked
# them (free text such as `COI-0001`, events of schema version 1), kept as recorded.
RecordedCoiId = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9*][A-Z0-9*-]{3,39}$")]
# Who acted: a principal of the access schema (a person, a system such as the CLI), or a
# service acting on its own (its name, e.g. `manufacturing` reacting to an upstream event).
# Never free text (issue 8, item 4): the consumer sets it from a verified credential.
PRINCIPAL_ID_PATTERN = r"^[a-z0-9][a-z0-9._@-]{0,63}$"
PrincipalId = Annotated[str, StringConstraints(pattern=PRINCIPAL_ID_PATTERN)]
ActorId = PrincipalId
