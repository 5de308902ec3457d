"""Manufacturing HTTP API: its records and their electronic signatures (a release is
approved by a qualified person's signature, EU GMP Annex 16 §1; 21 CFR 11.50)."""

from __future__ import annotations

from infra.runtime.access.policy import Action
from infra.runtime.signing import signature_endpoints
from services.manufacturing.adapters.records import record_resource

ENDPOINTS = signature_endpoints(record_resource, Action.READ_PRODUCT)
