"""Who acts: the vocabulary of principals, organisations and roles (issue 8).

Part of the public contract because events will name the acting principal and the role it
acted in (21 CFR 11.10(e): audit trails record the operator's actions), and tokens carry
them across services. The values are stable strings; add, never rename.
"""

from __future__ import annotations

from enum import StrEnum


class OrgKind(StrEnum):
    """What an organisation is: a treating centre, a GMP manufacturing facility, or the
    network that runs CellTrail itself (operators, auditors, administrators)."""

    CENTRE = "centre"
    FACILITY = "facility"
    NETWORK = "network"


class PrincipalKind(StrEnum):
    """A person signs in with a password; a system (a facility's integration, an outcome
    consumer, the CLI) with an API key."""

    PERSON = "person"
    SYSTEM = "system"


class Role(StrEnum):
    """A role a principal holds at one organisation. Which organisation kind each role
    belongs to and what it may do is the policy's table (infra/runtime/access/policy.py)."""

    # centre staff
    PHYSICIAN = "physician"
    NURSE = "nurse"
    DATA_MANAGER = "data_manager"
    # GMP facility staff (EU GMP Part I ch. 2: the qualified person certifies release)
    QUALIFIED_PERSON = "qualified_person"
    QC_ANALYST = "qc_analyst"
    OPERATOR = "operator"
    # moves products between facility and centre; a member of the organisation it serves
    COURIER = "courier"
    # network
    NETWORK_OPERATOR = "network_operator"
    AUDITOR = "auditor"
    ADMINISTRATOR = "administrator"
    # systems
    FACILITY_SYSTEM = "facility_system"
    OUTCOME_CONSUMER = "outcome_consumer"
    # submits records made elsewhere, through the live path (`celltrail load`: the CLI)
    DATA_LOADER = "data_loader"
