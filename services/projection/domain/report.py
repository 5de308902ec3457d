"""Endpoint metrics per programme, from subject views."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from services.clinical import time_to_event as tte
from services.clinical.rates import EmptyValuesError, median_and_range, response_rate
from services.clinical.survival import kaplan_meier
from services.projection.domain.subject_view import SubjectView


@dataclass(frozen=True)
class ProgrammeRow:
    programme_id: str
    phase: str
    day28: dict[str, Any] | None
    vein_to_vein_days: int | None
    centre_id: str | None = None  # whose subject it is: the report counts only the caller's centres
    legs_days: dict[str, float | None] | None = None  # SubjectView.legs_days
    # issue 9 item 4 (EU GMP Part IV 11.5): the subject's infusions of units released out of
    # specification (infusion.ProductInfused.out_of_specification), and its sponsor
    # notifications raised and not yet made
    out_of_specification_infusions: int = 0
    open_sponsor_notifications: int = 0
    enrolled_on: str | None = None  # ISO date of its enrolment in the programme (issue 10 item 6)
    dose_level: int | None = None  # a dose escalation's level (issue 10 item 3)
    dlt: bool | None = None  # its DLT evaluation (None: not yet evaluated)
    # issue 11: its CRS episodes, (onset day, maximum grade, resolution day, duration days, ...)
    crs_episodes: tuple[tuple[int, int, int | None, int | None, bool, bool], ...] = ()
    crs_graded: bool = False  # CRS was graded from its observations at least once
    icans_episodes: tuple[tuple[int, int, int | None, int | None, bool, bool], ...] = ()  # the same for ICANS
    icans_graded: bool = False
    # from the blood counts: (onset day, recovery day, duration days)
    neutropenia_episodes: tuple[tuple[int, int | None, int | None], ...] = ()
    b_cell_aplasia_episodes: tuple[tuple[int, int | None, int | None], ...] = ()
    hospital_stay_days: int | None = None
    enrolment_to_apheresis_days: int | None = None
    died_on: str | None = None
    last_contact_on: str | None = None
    follow_up_days: int | None = None  # the first infusion to the death or the last contact
    infused_on: str | None = None  # the first infusion's date
    remission_on: str | None = None  # the first CR or CRi
    relapse_on: str | None = None  # the first relapse after it
    last_assessed_on: str | None = None  # the latest response assessment
    last_response: tuple[str | None, str] | None = None  # its (category, MRD status)
    adverse_events: tuple[tuple[str, int, bool], ...] = ()  # (CTCAE term, worst grade, serious)
    lupus: tuple[tuple[str, int, bool, bool, str], ...] = ()  # (date, SLEDAI-2K, DORIS, drug-free, id)
    car_t: tuple[int, float | None, int | None, int | None] | None = None  # (revision, peak, its day, last)
    best_response: dict[str, Any] | None = None  # SubjectView.best_response
    # disease at the baseline by seed 000's readings: {"morphology": bool, "flow_cytometry": bool
    # or None, "molecular": bool or None}; None: no baseline
    baseline_disease: dict[str, bool | None] | None = None
    # the DLTs the programme's definition found in its adverse events (None: not determined),
    # and whether the investigator evaluated no DLT against them, with a reason
    dlts_by_definition: int | None = None
    dlt_disagreement: bool = False

    @classmethod
    def of(cls, view: SubjectView) -> "ProgrammeRow":
        """The row of an enrolled subject's view."""
        enrolled_on = next((on for on, p in view.enrolments if p == view.programme_id), None)
        return cls(view.programme_id, view.phase, view.day28_result, view.vein_to_vein_days, view.centre_id, view.legs_days,
                   len(view.oos_infusions), len(view.open_sponsor_notifications), enrolled_on, view.dose_level,
                   view.dlt, view.crs_episodes, view.crs_revision > 0, view.icans_episodes, view.icans_revision > 0,
                   view.neutropenia_episodes, view.b_cell_aplasia_episodes, view.hospital_stay_days,
                   view.enrolment_to_apheresis_days, view.died_on, view.last_contact_on, view.follow_up_days,
                   view.first_infused.infused_on if view.first_infused else None, *view.response_dates,
                   view.responses[-1][0] if view.responses else None,
                   tuple(view.responses[-1][1:3]) if view.responses else None, view.adverse_events, view.lupus,
                   view.car_t, view.best_response,
                   dict(zip(("morphology", "flow_cytometry", "molecular"), view.baseline[1:4]))
                   if view.baseline else None,
                   len(view.derived_dlts[1]) if view.derived_dlts else None, view.dlt_disagreement is not None)


def lupus(rows: list["ProgrammeRow"]) -> dict[str, Any]:
    """Seed 003's endpoints (issue 11 item 3): SLEDAI-2K at baseline (the latest assessment on or
    before the infusion day), at the latest assessment, and its change, median (range); DORIS
    remission and drug-free remission at the latest assessment after the infusion, n/N; each
    over the infused subjects assessed, with those left out and why."""
    infused = [r for r in rows if r.infused_on]
    baseline, latest = [], []  # per infused subject: its assessment, or None
    for r in infused:
        before = [x for x in r.lupus if x[0] <= r.infused_on]  # type: ignore[operator]
        after = [x for x in r.lupus if x[0] > r.infused_on]  # type: ignore[operator]
        baseline.append(before[-1] if before else None)
        latest.append(after[-1] if after else None)
    assessed = [x for x in latest if x is not None]
    return {"sledai_2k_baseline": _figure([x and float(x[1]) for x in baseline],
                                          "no assessment on or before the infusion day"),
            "sledai_2k_latest": _figure([x and float(x[1]) for x in latest], "no assessment after the infusion"),
            "sledai_2k_change": _figure([float(a[1] - b[1]) if a and b else None for b, a in zip(baseline, latest)],
                                        "no baseline, or no assessment after the infusion"),
            "doris_remission": {"subjects": sum(1 for x in assessed if x[2]), "n": len(assessed)},
            "drug_free_remission": {"subjects": sum(1 for x in assessed if x[3]), "n": len(assessed)}}


def _figure(values: list[float | None], why: str, scale: float = 1.0) -> dict[str, Any]:
    """Median (range) of the known values (each divided by `scale`), `n` of them, and how many
    subjects were left out (a None) and why."""
    known = [v / scale for v in values if v is not None]
    return {**(asdict(median_and_range(known)) if known else {"median": None, "minimum": None, "maximum": None}),
            "n": len(known), "left_out": {"n": len(values) - len(known), "why": why}}


def adverse_events(rows: list["ProgrammeRow"]) -> dict[str, Any]:
    """Adverse events by CTCAE v5 term (issue 11 item 3, the safety table): for each term, the
    subjects by their worst grade of it, and how many had it serious; over the infused
    subjects (`n`); `grade_3_or_more`: subjects with any event of grade 3 or more."""
    infused = [r for r in rows if r.phase in ("infused", "assessed")]
    terms: dict[str, dict[str, Any]] = {}
    for r in infused:
        for term, grade, serious in r.adverse_events:
            t = terms.setdefault(term, {"by_worst_grade": {}, "serious": 0, "subjects": 0})
            t["by_worst_grade"][str(grade)] = t["by_worst_grade"].get(str(grade), 0) + 1
            t["serious"] += serious
            t["subjects"] += 1
    for t in terms.values():
        t["by_worst_grade"] = dict(sorted(t["by_worst_grade"].items()))
    return {"n": len(infused), "grade_3_or_more": sum(1 for r in infused if any(g >= 3 for _, g, _ in r.adverse_events)),
            "by_term": dict(sorted(terms.items()))}


# EFS: no CR or CRi within 3 months of the infusion is a treatment failure at day 0 (the
# window of ELIANA's primary endpoint, overall remission within 3 months: Maude et al., N Engl J
# Med 2018;378:439-448; ELN 2022 dates the failure at the start of treatment).
EFS_LANDMARK_DAYS = 90


def survival(rows: list["ProgrammeRow"], conf_type: str = "log-log") -> dict[str, Any]:
    """Overall survival, event-free survival, time to progression (from the first infusion) and
    duration of response (from the first CR or CRi, responders only), as Kaplan-Meier
    estimates in months: subjects counted, events, the median and its 95 % interval
    (Brookmeyer-Crowley from the pointwise `conf_type` interval: "log-log", or R's default
    "log", or "plain"; None: not reached), each with who was left out and why. Definitions:
    services/clinical/time_to_event.py; no transplant after infusion is recorded, so none
    censors."""
    infused = [r for r in rows if r.infused_on]
    facts, overall = [], []
    ignore = tte.TransplantHandling.IGNORE_TRANSPLANT
    for r in infused:
        last = max(d for d in (r.last_contact_on, r.last_assessed_on, r.infused_on, r.died_on) if d)
        f = tte.SubjectFacts(
            infusion_date=date.fromisoformat(r.infused_on), last_contact_date=date.fromisoformat(last),
            death_date=date.fromisoformat(r.died_on) if r.died_on else None,
            relapse_date=date.fromisoformat(r.relapse_on) if r.relapse_on else None,
            response_date=date.fromisoformat(r.remission_on) if r.remission_on else None)
        try:  # dates that contradict each other (a death before the infusion) leave the subject out
            overall.append(tte.overall_survival(f, transplant_handling=ignore))
        except tte.TimeToEventError:
            continue
        facts.append(f)
    endpoints = {
        "overall_survival": overall,
        "event_free_survival": [tte.event_free_survival(f, transplant_handling=ignore,
                                                        response_landmark_days=EFS_LANDMARK_DAYS) for f in facts],
        "time_to_progression": [tte.time_to_progression(f, transplant_handling=ignore) for f in facts],
        "duration_of_response": [tte.duration_of_response(f, transplant_handling=ignore) for f in facts],
    }
    out: dict[str, Any] = {"conf_type": conf_type}
    for name, times in endpoints.items():
        counted = [t for t in times if t is not None]
        left = {"n": len(rows) - len(counted),
                "why": "not infused, dates that contradict each other" + (
                    ", or no complete remission (CR or CRi)" if name == "duration_of_response" else "")}
        if not counted:
            out[name] = {"n": 0, "events": 0, "median_months": None, "ci95_months": [None, None], "left_out": left}
            continue
        pairs = [t.as_months_pair() for t in counted]
        km = kaplan_meier(pairs, conf_type=conf_type)
        out[name] = {"n": km.n_subjects, "events": km.n_events, "median_months": km.median.estimate,
                     "ci95_months": [km.median.ci_lower, km.median.ci_upper], "left_out": left,
                     # the step curve and its pointwise interval, and the numbers at risk every 3 months
                     # (what a Kaplan-Meier plot draws: celltrail report --plots)
                     "curve": [{"time": r.time, "survival": r.survival, "lower": r.ci_lower, "upper": r.ci_upper}
                               for r in km.rows],
                     "at_risk": [{"time": float(m), "n": sum(1 for t, _ in pairs if t >= m)}
                                 for m in range(0, int(km.max_follow_up) + 1, 3)],
                     "max_follow_up_months": km.max_follow_up}
    return out


def course(rows: list["ProgrammeRow"]) -> dict[str, Any]:
    """The course after infusion (issue 11 item 3), each figure median (range) over the
    subjects it counts (`n`), with those left out and why: the duration of the neutropenia
    after the infusion (the first episode not recovered before day 0), of the B-cell aplasia
    (days and months of 30.4375 days), of the hospital stay the infusion was given in; the
    time from enrolment to apheresis; the follow-up (to the death or the last contact); who
    died and who was last known alive."""
    infused = [r for r in rows if r.phase in ("infused", "assessed")]

    def after_infusion(episodes: tuple[tuple[int, int | None, int | None], ...]) -> float | None:
        e = next((e for e in episodes if e[1] is None or e[1] > 0), None)
        return float(e[2]) if e is not None and e[2] is not None else None

    def car_t(r: ProgrammeRow, i: int) -> float | None:
        return float(r.car_t[i]) if r.car_t and r.car_t[i] is not None else None

    aplasia = [after_infusion(r.b_cell_aplasia_episodes) for r in infused]
    no_car_t = "no CAR-T count after the infusion, or none detectable"
    return {
        "neutropenia_days": _figure([after_infusion(r.neutropenia_episodes) for r in infused],
                                    "no neutropenia after the infusion, or not yet recovered (ANC < 500/uL)"),
        "b_cell_aplasia_days": _figure(aplasia, "no B-cell aplasia, or not yet recovered"),
        "b_cell_aplasia_months": _figure(aplasia, "no B-cell aplasia, or not yet recovered", 30.4375),
        "hospital_stay_days": _figure([r.hospital_stay_days for r in infused],
                                      "no admission and discharge around the infusion recorded"),
        "enrolment_to_apheresis_days": _figure([r.enrolment_to_apheresis_days for r in rows], "not collected yet"),
        "car_t_peak_per_ul": _figure([car_t(r, 1) for r in infused], no_car_t),
        "car_t_peak_day": _figure([car_t(r, 2) for r in infused], no_car_t),
        "car_t_last_detectable_day": _figure([car_t(r, 3) for r in infused], no_car_t),
        "follow_up_months": _figure([r.follow_up_days for r in infused],
                                    "no last contact or death recorded after the infusion", 30.4375),
        "alive_in_mrd_negative_remission_at_last_assessment": sum(
            1 for r in infused if not r.died_on and r.last_response is not None
            and r.last_response[0] in ("complete_remission", "complete_remission_incomplete_count_recovery")
            and r.last_response[1] == "negative"),
        "deaths": sum(1 for r in infused if r.died_on), "alive_at_last_contact": sum(
            1 for r in infused if r.last_contact_on and not r.died_on), "n": len(infused)}


_GRADED_FROM = {"crs": "vital signs", "icans": "neurological assessments"}


def toxicity_table(rows: list["ProgrammeRow"], kind: str = "crs") -> dict[str, Any]:
    """CRS or ICANS among the infused subjects (issue 11 item 3, the safety table): how many
    had any, by their maximum grade (ASTCT), the onset day of their first episode and the
    duration of their episodes that resolved, median (range); `n` the infused subjects graded,
    `left_out` those infused without a grading (none of its observations after the infusion)."""
    infused = [r for r in rows if r.phase in ("infused", "assessed")]
    graded = [r for r in infused if getattr(r, f"{kind}_graded")]
    with_any = [r for r in graded if getattr(r, f"{kind}_episodes")]
    by_grade: dict[str, int] = {}
    for r in with_any:
        worst = str(max(e[1] for e in getattr(r, f"{kind}_episodes")))
        by_grade[worst] = by_grade.get(worst, 0) + 1
    onsets = [float(min(e[0] for e in getattr(r, f"{kind}_episodes"))) for r in with_any]
    durations = [float(e[3]) for r in with_any for e in getattr(r, f"{kind}_episodes") if e[3] is not None]
    return {"n": len(graded), f"with_{kind}": len(with_any), "by_max_grade": dict(sorted(by_grade.items())),
            "left_out": {"n": len(infused) - len(graded),
                         "why": f"infused, no {_GRADED_FROM[kind]} recorded after the infusion"},
            "onset_day": asdict(median_and_range(onsets)) if onsets else None,
            "duration_days": asdict(median_and_range(durations)) if durations else None,
            "episodes_resolved": len(durations)}


def escalation(rows: list["ProgrammeRow"]) -> list[dict[str, Any]]:
    """Per dose level of a dose escalation (issue 10 item 3): the subjects assigned, those
    evaluated for DLT and the DLTs among them (the counts the design decides on); the
    subjects whose adverse events hold a DLT by the programme's definition (issue 11 item 2),
    and the evaluations of no DLT made against it (each with its reason, in the timeline)."""
    levels = sorted({r.dose_level for r in rows if r.dose_level is not None})
    return [{"level": level, "enrolled": sum(1 for r in rows if r.dose_level == level),
             "evaluable": sum(1 for r in rows if r.dose_level == level and r.dlt is not None),
             "dlts": sum(1 for r in rows if r.dose_level == level and r.dlt),
             "dlts_by_definition": sum(1 for r in rows if r.dose_level == level and r.dlts_by_definition),
             "evaluated_against_definition": sum(1 for r in rows if r.dose_level == level and r.dlt_disagreement)}
            for level in levels]


def feasibility(rows: list["ProgrammeRow"]) -> dict[str, Any]:
    """Seed 001's feasibility endpoint: the time from the first to the last enrolment, and the
    subjects enrolled against those treated (infused at least once; how many infusions complete
    a treatment is the programme's, issue 10's dosing). `n`: the subjects counted."""
    dates = sorted(r.enrolled_on for r in rows if r.enrolled_on)
    first, last = (dates[0], dates[-1]) if dates else (None, None)
    span = (date.fromisoformat(last) - date.fromisoformat(first)).days if dates else None
    treated = sum(1 for r in rows if r.phase in ("infused", "assessed"))
    return {"first_enrolled_on": first, "last_enrolled_on": last, "enrolment_span_days": span,
            "enrolled": len(rows), "treated": treated, "n": len(rows)}


LEGS = ("collection_to_receipt", "manufacturing", "release_to_infusion")


# Seed 000 (CARCIK-CD19 phase II): the day-28 response by each of three readings of the marrow:
# morphology (blasts < 5 %), flow cytometry (< 5 %) and molecular (< 0.01 %).
READINGS = (("morphology", "morphologic_response"), ("flow_cytometry", "flow_response"),
            ("molecular", "molecular_response"))


def by_reading(evaluable: list["ProgrammeRow"]) -> dict[str, Any]:
    """The day-28 response rate by each reading (seed 000), with its exact Clopper-Pearson 95 %
    interval, over the subjects whose assessment measured that reading (`n`); those it did not
    measure are left out. `from_baseline`: the change from baseline the protocol names, the
    same over the subjects with disease by that reading at their baseline (blasts >= 5 %, or
    molecular positivity >= 0.01 %), leaving out those without a baseline reading or without
    disease by it."""
    out: dict[str, Any] = {}
    for name, field in READINGS:
        measured = [r for r in evaluable if r.day28 and r.day28.get(field) is not None]
        entry = _rate([r.day28[field] for r in measured], {"n": len(evaluable) - len(measured),  # type: ignore[index]
                                                           "why": f"no {name} reading"})
        with_baseline = [r for r in measured if r.baseline_disease and r.baseline_disease.get(name) is not None]
        diseased = [r for r in with_baseline if r.baseline_disease[name]]  # type: ignore[index]
        entry["from_baseline"] = _rate([r.day28[field] for r in diseased], {  # type: ignore[index]
            "n": len(measured) - len(diseased), "why": {f"no {name} reading at baseline": len(measured) - len(
                with_baseline), f"no disease by {name} at baseline": len(with_baseline) - len(diseased)}})
        out[name] = entry
    return out


def _rate(responses: list[bool], left_out: dict[str, Any]) -> dict[str, Any]:
    """Responders n/N with the exact Clopper-Pearson 95 % interval, and whom it left out."""
    entry: dict[str, Any] = {"responders": sum(responses), "n": len(responses), "estimate": None,
                             "ci95": [None, None], "left_out": left_out}
    if responses:
        p = response_rate(sum(responses), len(responses))
        entry.update(estimate=p.estimate, ci95=[p.ci_lower, p.ci_upper])
    return entry


# What each criteria's best response is called, from the best (services/clinical/response_all.py,
# molecular_mrd.py, doris.py)
_BEST_ORDER = {
    "nccn_all": ("complete_remission", "complete_remission_incomplete_count_recovery", "no_response",
                 "molecular_relapse", "haematological_relapse"),
    "bcr_abl1_qrt_pcr": ("undetectable", "positive_not_quantifiable", "positive"),
    "sledai_doris": ("doris_remission", "no_remission"),
}
_NOT_EVALUABLE = {"nccn_all": "no response assessment within the window",
                  "bcr_abl1_qrt_pcr": "no evaluable BCR::ABL1 result within the window (none, or undetectable "
                                      "with fewer than 10,000 ABL1 copies)",
                  "sledai_doris": "no lupus assessment within the window"}


def response(rows: list["ProgrammeRow"]) -> dict[str, Any] | None:
    """The programme's response as its protocol defines it (issue 11 item 3): the best response
    within its window after the first infusion (SubjectView.best_response), responders n/N
    with the exact Clopper-Pearson 95 % interval over the infused subjects with something
    evaluable in the window, the subjects by their best category or status, and for BCR::ABL1
    the log reduction from the baseline, median (range). Subjects enrolled under another
    definition (an earlier version) are left out and counted. None: the programme states no
    definition."""
    infused = [r for r in rows if r.best_response is not None]
    if not infused:
        return None
    rules = Counter((b["criteria"], b["reading"], b["within_days"]) for b in (r.best_response for r in infused))
    (criteria, reading, within), _ = rules.most_common(1)[0]
    under = [r for r in infused if (r.best_response["criteria"], r.best_response["reading"],  # type: ignore[index]
                                    r.best_response["within_days"]) == (criteria, reading, within)]  # type: ignore[index]
    evaluable = [r for r in under if r.best_response["responder"] is not None]  # type: ignore[index]
    responders = sum(1 for r in evaluable if r.best_response["responder"])  # type: ignore[index]
    out: dict[str, Any] = {
        "criteria": criteria, "responder": reading, "within_days": within, "n": len(evaluable),
        "responders": responders, "estimate": None, "ci95": [None, None],
        "best": {name: sum(1 for r in evaluable if r.best_response["best"] == name)  # type: ignore[index]
                 for name in _BEST_ORDER[criteria]},
        "left_out": {"n": len(infused) - len(evaluable), "why": {
            _NOT_EVALUABLE[criteria]: len(under) - len(evaluable),
            "enrolled under another response definition": len(infused) - len(under)}},
    }
    if evaluable:
        p = response_rate(responders, len(evaluable))
        out.update(estimate=p.estimate, ci95=[p.ci_lower, p.ci_upper])
    if criteria == "bcr_abl1_qrt_pcr":
        out["log_reduction"] = _figure([r.best_response.get("log_reduction") for r in evaluable],  # type: ignore[union-attr]
                                       "the best result not quantifiable, or no quantifiable baseline")
    return out


def programme_report(rows: list[ProgrammeRow], conf_type: str = "log-log") -> list[dict[str, Any]]:
    """Day-28 overall response rate (CR + CRi among subjects with a day-28 assessment),
    with its exact Clopper-Pearson 95 % interval, vein-to-vein time and each leg of the path,
    median (range), and the infusions of units released out of specification and the open
    sponsor notifications (each with `n`, the subjects it counts)."""
    by_programme: dict[str, list[ProgrammeRow]] = {}
    for r in rows:
        by_programme.setdefault(r.programme_id, []).append(r)
    report = []
    for programme_id, rs in sorted(by_programme.items()):
        evaluable = [r for r in rs if r.day28 is not None and r.day28["responder"] is not None]
        responders = sum(1 for r in evaluable if r.day28["responder"])
        entry: dict[str, Any] = {
            "programme_id": programme_id,
            "enrolled": len(rs),
            "infused": sum(1 for r in rs if r.phase in ("infused", "assessed")),
            "day28_evaluable": len(evaluable),
            "day28_responders": responders,
            "day28_orr": None,
            # what makes a day-28 responder, as the programme defines it (issue 11 item 3)
            "day28_reading": next((r.day28.get("reading") for r in evaluable), None),
            "vein_to_vein_days": None,
        }
        if evaluable:
            p = response_rate(responders, len(evaluable))
            entry["day28_orr"] = {"estimate": p.estimate, "ci95": [p.ci_lower, p.ci_upper]}
        entry["day28_by_reading"] = by_reading([r for r in rs if r.day28 is not None])
        entry["response"] = response(rs)
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
        entry["feasibility"] = feasibility(rs)
        if any(r.dose_level is not None for r in rs):
            entry["escalation"] = escalation(rs)
        entry["crs"] = toxicity_table(rs, "crs")
        entry["icans"] = toxicity_table(rs, "icans")
        entry["course"] = course(rs)
        entry["survival"] = survival(rs, conf_type)
        entry["adverse_events"] = adverse_events(rs)
        if any(r.lupus for r in rs):
            entry["lupus"] = lupus(rs)
        entry["out_of_specification_infusions"] = _counted(rs, "out_of_specification_infusions", "infusions")
        entry["open_sponsor_notifications"] = _counted(rs, "open_sponsor_notifications", "notifications")
        report.append(entry)
    return report


def _counted(rows: list[ProgrammeRow], field: str, what: str) -> dict[str, int]:
    """How many `what` the programme's subjects have, and over how many subjects (`n`, as the
    medians say theirs): infusions of out-of-specification units, open sponsor notifications."""
    counts = [getattr(r, field) for r in rows if getattr(r, field)]
    return {what: sum(counts), "n": len(counts)}
