"""A subject's view with what could identify the person removed: what the network operator
and anyone else without `read_identifiers` for the subject's centre are shown (issue 8
item 3: "the network operator reads across centres with identifiers removed").

The views hold no direct identifier (name, date of birth, hospital record number: those
never leave enrollment's identity table). What remains that leads back to a person:
- the chain-of-identity id and the lot number: printed on the product's labels and in the
  centre's and facility's records beside the patient's name and date of birth (the
  chain of identity links every label to one patient, FACT-JACIE standards, ISBT 128
  ST-004), so anyone with access to those records can re-identify the subject from them;
- the dates of the person's care, reduced to the year as HIPAA's Safe Harbor method asks
  (45 CFR 164.514(b)(2)(i)(C): "All elements of dates (except year) for dates directly
  related to an individual"). Intervals (study day, vein-to-vein days) are kept: they are
  what the network's reporting needs and they date nothing.
The pseudonymous subject id stays: it identifies no one outside enrollment's identity table
(it is random, handlers.new_subject_id) and is how a subject is addressed.

A unit's id is its COI followed by its division code (docs/identifiers.md), so it is a
chain-of-identity id too: wherever one stands (the units, their quality records, the
sponsor's notifications, any summary) its COI is replaced and the division code kept. The
same goes for every date: whatever part of the view holds one (a unit's QC results, its
expiry, a signature, a booking's day, a summary), it is cut to the year, so a field added
to the view later is de-identified without being named here.

One function, applied to every view the projection answers that the caller may not see
identified (services/projection/entrypoints/http.py).
"""

from __future__ import annotations

import re
from typing import Any

REMOVED = "[removed]"
# "COI <id>" and "lot <number>" in timeline summaries (subject_view.fold writes them)
_LABELS = re.compile(r"\b(COI|lot) [^\s,:;]+")
# an ISBT 128-shaped COI (contracts/isbt128.py: FIN, year, sequence, check character),
# alone or as the stem of a unit id
_ISBT128 = re.compile(r"\b[A-Z][0-9]{12}[0-9A-Z*]")
# an ISO 8601 date, or an instant, of which the year is kept
_DATE = re.compile(r"\b([0-9]{4})-[0-9]{2}-[0-9]{2}(?:T[0-9:.]+(?:Z|[+-][0-9]{2}:[0-9]{2})?)?")


def _year(value: str | None) -> str | None:
    return value[:4] if value else value


def _scrubbed(value: Any) -> Any:
    """`value` with every COI (and unit id's COI), lot number and date finer than the year
    taken out, however deep it stands."""
    if isinstance(value, str):
        return _DATE.sub(r"\1", _ISBT128.sub(REMOVED, _LABELS.sub(rf"\1 {REMOVED}", value)))
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    return value


def deidentified(view: dict[str, Any]) -> dict[str, Any]:
    """`view` (SubjectView.to_json) without chain-of-identity ids, lot numbers and dates
    finer than the year."""
    return _scrubbed({
        **view,
        "enrolments": [[_year(on), programme] for on, programme in view["enrolments"]],
        "timeline": [{**t, "at": _year(t["at"])} for t in view["timeline"]],
        "products": [{"coi_id": REMOVED, "collected_on": _year(p.get("collected_on")),
                      "infused_on": _year(p.get("infused_on"))} for p in view["products"]],
        "identifiers_removed": True,
    })
