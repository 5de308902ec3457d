"""Endpoint metrics per programme, from subject views."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from services.clinical.rates import EmptyValuesError, median_and_range, response_rate


@dataclass(frozen=True)
class ProgrammeRow:
    programme_id: str
    phase: str
    day28: dict[str, Any] | None
    vein_to_vein_days: int | None
    centre_id: str | None = None  # whose subject it is: the report counts only the caller's centres
    legs_days: dict[str, float | None] | None = None  # SubjectView.legs_days


LEGS = ("collection_to_receipt", "manufacturing", "release_to_infusion")


def programme_report(rows: list[ProgrammeRow]) -> list[dict[str, Any]]:
    """Day-28 overall response rate (CR + CRi among subjects with a day-28 assessment),
    with its exact Clopper-Pearson 95 % interval, and vein-to-vein time median (range)."""
    by_programme: dict[str, list[ProgrammeRow]] = {}
    for r in rows:
        by_programme.setdefault(r.programme_id, []).append(r)
    report = []
    for programme_id, rs in sorted(by_programme.items()):
        evaluable = [r for r in rs if r.day28 is not None]
        responders = sum(1 for r in evaluable if r.day28["responder"])
        entry: dict[str, Any] = {
            "programme_id": programme_id,
            "enrolled": len(rs),
            "infused": sum(1 for r in rs if r.phase in ("infused", "assessed")),
            "day28_evaluable": len(evaluable),
            "day28_responders": responders,
            "day28_orr": None,
            "vein_to_vein_days": None,
        }
        if evaluable:
            p = response_rate(responders, len(evaluable))
            entry["day28_orr"] = {"estimate": p.estimate, "ci95": [p.ci_lower, p.ci_upper]}
        try:
            v2v = median_and_range([r.vein_to_vein_days for r in rs if r.vein_to_vein_days is not None])
            entry["vein_to_vein_days"] = asdict(v2v)
        except EmptyValuesError:
            pass
        # issue 9 item 8: each leg of the path, median (range) in days, over the subjects whose leg is known
        entry["legs_days"] = {}
        for leg in LEGS:
            known = [float(r.legs_days[leg]) for r in rs if r.legs_days and r.legs_days.get(leg) is not None]
            entry["legs_days"][leg] = asdict(median_and_range(known)) if known else None
        report.append(entry)
    return report
