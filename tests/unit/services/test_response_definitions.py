"""Each programme's response by its own definition (issue 11 item 3; contracts/programmes.
ResponseDefinition, carried by SubjectEnrolled): the day-28 responder by the programme's
reading (seed 000: marrow blasts < 5 % by morphology; seed 002: CR or CRi), no day-28 response
for programmes that read none (seed 001 by BCR::ABL1, seed 003 by DORIS), and the best response
within the programme's window, with the report's `response` section."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts import events as ev
from contracts.observations import LupusAssessment, MolecularMrd
from contracts.programmes import ProgrammeDefinition, ResponseDefinition
from services.projection.domain.report import ProgrammeRow, programme_report
from services.projection.domain.subject_view import SubjectView, fold, outcomes

CET = timezone(timedelta(hours=1))
DAY0 = date(2025, 3, 10)
PROGRAMMES = Path(__file__).parents[3] / "infra" / "tooling" / "programmes"


def definition(programme_id: str) -> ResponseDefinition:
    return ProgrammeDefinition.model_validate(json.loads((PROGRAMMES / f"{programme_id}.json").read_text())).response


def at(day: int) -> datetime:
    return datetime.combine(DAY0 + timedelta(days=day), datetime.min.time(), tzinfo=CET).replace(hour=9)


def enrolled(n: int, programme_id: str) -> tuple[ev.SubjectEnrolled, datetime]:
    return (ev.SubjectEnrolled(subject_id=f"S-{n:012d}", programme_id=programme_id, centre_id="IT-BG-01",
                               enrolled_on=DAY0 - timedelta(days=40), response=definition(programme_id)), at(-40))


def infused(n: int) -> tuple[ev.ProductInfused, datetime]:
    return (ev.ProductInfused(subject_id=f"S-{n:012d}", coi_id=f"I00112500000{n}1", infused_at=at(0),
                              infusion_number=1), at(0))


def assessed(n: int, day: int, category: ev.ResponseCategory, *, blasts: float = 1.0, flow: float | None = None,
             mrd: ev.MrdStatus = ev.MrdStatus.NEGATIVE) -> tuple[ev.ResponseAssessed, datetime]:
    return (ev.ResponseAssessed(subject_id=f"S-{n:012d}", assessed_on=DAY0 + timedelta(days=day), study_day=day,
                                marrow_blasts_percent=blasts, response_category=category, mrd_status=mrd,
                                morphologic_response=blasts < 5, flow_mrd_percent=flow,
                                flow_response=None if flow is None else flow < 5), at(day))


def observed(n: int, day: int, observation, seq: int = 0) -> tuple[ev.ObservationRecorded, datetime]:
    return (ev.ObservationRecorded(observation_id=f"{n:08d}{day + 500:08d}{seq:016d}", subject_id=f"S-{n:012d}",
                                   observed_at=at(day), observation=observation), at(day))


def bcr_abl1(ratio: float | None = None, *, detected: bool = True, copies: int | None = 50_000) -> MolecularMrd:
    return MolecularMrd(target="bcr_abl1_p190", specimen="bone_marrow", detected=detected,
                        quantifiable=ratio is not None, ratio_percent=ratio, control_copies=copies)


def view_of(n: int, events, *, reverse: bool = False) -> SubjectView:
    view = SubjectView(f"S-{n:012d}")
    for e, t in (events[::-1] if reverse else events):
        view = fold(view, e, t)
    return view


CR, CRI, NR = ev.ResponseCategory.CR, ev.ResponseCategory.CRI, ev.ResponseCategory.NO_RESPONSE


class TestTheDefinitions:
    def test_the_bundled_programmes_define_their_response(self):
        assert [(d.criteria.value, d.responder.value, d.landmark_day, d.best_within_days) for d in (
            definition(p) for p in ("CARCIK-CD19-P2", "NK-PHALL-P1", "CART-BALL-RR", "CART-CD19-AUTOIMMUNE"))] == [
            ("nccn_all", "morphology", 28, None), ("bcr_abl1_qrt_pcr", "molecular_response", None, 365),
            ("nccn_all", "cr_cri", 28, 91), ("sledai_doris", "doris_remission", None, None)]

    @pytest.mark.parametrize(("fields", "message"), [
        ({"criteria": "sledai_doris", "responder": "cr_cri"}, "not read by sledai_doris"),
        ({"criteria": "bcr_abl1_qrt_pcr", "responder": "molecular_response", "landmark_day": 28}, "landmark"),
        ({"criteria": "nccn_all", "responder": "cr_cri", "landmark_day": 30}, "landmark_day"),
    ])
    def test_an_inconsistent_definition_is_refused_naming_what_is_wrong(self, fields, message):
        with pytest.raises(ValidationError, match=message):
            ResponseDefinition(source="protocol", **fields)


class TestDay28:
    def test_seed_000_reads_morphology_where_the_nccn_category_is_no_response(self):
        # marrow blasts 3 % with circulating blasts: NCCN no response, seed 000's morphology reading met
        events = [enrolled(1, "CARCIK-CD19-P2"), infused(1), assessed(1, 28, NR, blasts=3.0)]
        view = view_of(1, events)
        assert view.day28_result["reading"] == "morphology" and view.day28_result["responder"] is True
        assert SubjectView.from_json(view.to_json()) == view  # the assessment kept, its reading recomputed
        [day28] = [o for o in outcomes(view) if isinstance(o, ev.Day28ResponseDetermined)]
        assert day28.responder is True
        legacy = view_of(1, [(e.model_copy(update={"response": None}), t) if isinstance(e, ev.SubjectEnrolled)
                             else (e, t) for e, t in events])
        assert legacy.day28_result["responder"] is False  # no definition: CR or CRi, as before

    def test_a_reading_the_assessment_did_not_measure_leaves_the_subject_out(self):
        rule = ("nccn_all", "flow_cytometry", 28, None)
        measured = view_of(2, [enrolled(2, "CARCIK-CD19-P2"), infused(2), assessed(2, 28, CR, flow=0.5)])
        unmeasured = view_of(3, [enrolled(3, "CARCIK-CD19-P2"), infused(3), assessed(3, 28, CR)])
        rows = [ProgrammeRow.of(dataclasses.replace(v, response_rule=rule)) for v in (measured, unmeasured)]
        [report] = programme_report(rows)
        assert (report["day28_reading"], report["day28_evaluable"], report["day28_responders"]) == (
            "flow_cytometry", 1, 1)

    def test_a_lupus_subject_has_no_day_28_response_whatever_a_marrow_assessment_says(self):
        view = view_of(4, [enrolled(4, "CART-CD19-AUTOIMMUNE"), infused(4), assessed(4, 28, CRI)])
        assert view.day28 is not None and view.day28_result is None
        assert not [o for o in outcomes(view) if isinstance(o, ev.Day28ResponseDetermined)]
        [report] = programme_report([ProgrammeRow.of(view)])
        assert (report["day28_evaluable"], report["day28_orr"]) == (0, None)


class TestBestResponse:
    def test_cr_or_cri_within_three_months(self):
        early = view_of(5, [enrolled(5, "CART-BALL-RR"), infused(5), assessed(5, 28, CRI, mrd=ev.MrdStatus.POSITIVE),
                            assessed(5, 60, CR)])
        late = view_of(6, [enrolled(6, "CART-BALL-RR"), infused(6), assessed(6, 28, NR, blasts=40.0),
                           assessed(6, 120, CR)])  # after the window
        never = view_of(7, [enrolled(7, "CART-BALL-RR"), infused(7)])
        assert (early.best_response["responder"], early.best_response["on"], early.best_response["best"],
                early.best_response["mrd_status"]) == (True, "2025-04-07", "complete_remission", "negative")
        assert (late.best_response["responder"], late.best_response["best"]) == (False, "no_response")
        assert never.best_response["responder"] is None
        [report] = programme_report([ProgrammeRow.of(v) for v in (early, late, never)])
        r = report["response"]
        assert (r["criteria"], r["responder"], r["within_days"], r["n"], r["responders"]) == (
            "nccn_all", "cr_cri", 91, 2, 1)
        assert r["ci95"] == pytest.approx([0.0126, 0.9874], abs=5e-5)  # exact Clopper-Pearson, 1/2
        assert r["best"]["complete_remission"] == 1 and r["best"]["no_response"] == 1
        assert r["left_out"] == {"n": 1, "why": {"no response assessment within the window": 1,
                                                 "enrolled under another response definition": 0}}

    def test_seed_001_by_bcr_abl1_within_a_year(self):
        self.seed_001()

    def seed_001(self) -> dict:
        pnq = [enrolled(8, "NK-PHALL-P1"), observed(8, -2, bcr_abl1(0.5)), infused(8),
               observed(8, 28, bcr_abl1(0.05)), observed(8, 90, bcr_abl1(None)),
               observed(8, 400, bcr_abl1(None, detected=False))]  # after the year: not counted
        falling = [enrolled(9, "NK-PHALL-P1"), observed(9, -1, bcr_abl1(1.0)), infused(9),
                   observed(9, 28, bcr_abl1(0.1)), observed(9, 180, bcr_abl1(0.3))]
        insensitive = [enrolled(10, "NK-PHALL-P1"), infused(10), observed(10, 28, bcr_abl1(None, detected=False,
                                                                                           copies=4_000))]
        views = [view_of(8, pnq), view_of(9, falling), view_of(10, insensitive)]
        assert view_of(8, pnq, reverse=True).best_response == views[0].best_response  # whatever the order
        b = views[0].best_response
        assert (b["responder"], b["best"], b["on"], b["baseline"]) == (
            True, "positive_not_quantifiable", "2025-06-08", "positive")
        assert views[0].day28_result is None  # seed 001 reads no day-28 landmark
        b = views[1].best_response
        assert (b["responder"], b["best"], b["log_reduction"]) == (False, "positive", 1.0)
        assert views[2].best_response["responder"] is None
        [report] = programme_report([ProgrammeRow.of(v) for v in views])
        r = report["response"]
        assert (r["criteria"], r["n"], r["responders"], r["best"]) == (
            "bcr_abl1_qrt_pcr", 2, 1, {"undetectable": 0, "positive_not_quantifiable": 1, "positive": 1})
        assert (r["log_reduction"]["median"], r["log_reduction"]["n"], r["log_reduction"]["left_out"]["n"]) == (
            1.0, 1, 1)
        assert r["left_out"]["n"] == 1
        assert SubjectView.from_json(views[0].to_json()) == views[0]
        return report

    def test_the_cli_prints_it_as_a_reader_would(self, capsys):
        from infra.tooling.cli import print_report

        print_report([self.seed_001()])
        out = capsys.readouterr().out
        assert ("best response (molecular response, bcr_abl1_qrt_pcr) within 365 days: 1/2 (50%) (95% CI 1%-99%); "
                "best: positive not quantifiable 1, positive 1; 1 left out") in out
        assert "BCR::ABL1 log reduction from baseline: median 1 log (range 1-1, n=1)" in out

    def test_a_molecular_result_is_shown_in_the_timeline(self):
        view = view_of(8, [enrolled(8, "NK-PHALL-P1"), observed(8, 28, bcr_abl1(None, detected=False))])
        assert any(t.summary == "molecular MRD: bcr_abl1_p190 by qRT-PCR (bone marrow): not detected "
                                "(50000 ABL1 copies)" for t in view.timeline)

    def test_seed_003_by_doris_remission(self):
        def lupus(n: int, day: int, pga: float) -> tuple[ev.ObservationRecorded, datetime]:
            return observed(n, day, LupusAssessment(descriptors=[] if pga < 0.5 else ["arthritis"],
                                                    physician_global_assessment=pga,
                                                    prednisone_equivalent_mg_per_day=0.0))
        remitted = view_of(11, [enrolled(11, "CART-CD19-AUTOIMMUNE"), lupus(11, -3, 2.0), infused(11),
                                lupus(11, 90, 0.2)])
        active = view_of(12, [enrolled(12, "CART-CD19-AUTOIMMUNE"), lupus(12, -3, 2.0), infused(12),
                              lupus(12, 90, 1.0)])
        [report] = programme_report([ProgrammeRow.of(v) for v in (remitted, active)])
        assert (report["response"]["n"], report["response"]["responders"]) == (2, 1)
        assert report["response"]["best"] == {"doris_remission": 1, "no_remission": 1}


class TestTheObservation:
    @pytest.mark.parametrize(("fields", "field"), [
        ({"detected": False, "quantifiable": True, "ratio_percent": 0.1, "control_copies": 20_000}, "quantifiable"),
        ({"detected": True, "quantifiable": True}, "ratio_percent"),
        ({"detected": True, "quantifiable": False, "ratio_percent": 0.1}, "ratio_percent"),
        ({"detected": False}, "control_copies"),
        ({"detected": True, "quantifiable": True, "ratio_percent": 0.0}, "ratio_percent"),
    ])
    def test_an_inconsistent_result_is_refused_naming_the_field(self, fields, field):
        with pytest.raises(ValidationError, match=field):
            MolecularMrd(target="bcr_abl1_p190", specimen="bone_marrow", **fields)


def baselined(n: int, day: int, blasts: float, *, reason: str | None = None) -> tuple[ev.BaselineAssessed, datetime]:
    return (ev.BaselineAssessed(subject_id=f"S-{n:012d}", assessed_on=DAY0 + timedelta(days=day),
                                marrow_blasts_percent=blasts, circulating_blasts=False, extramedullary_disease=False,
                                anc_per_ul=900, platelets_per_ul=40_000, mrd_status=ev.MrdStatus.POSITIVE,
                                in_remission=blasts < 5, morphologic_disease=blasts >= 5,
                                correction_reason=reason), at(day))


class TestChangeFromBaseline:
    """Seed 000: the day-28 response "change from baseline": among the subjects with disease by
    the reading at their baseline."""

    def test_the_day_28_response_among_those_with_disease_at_baseline(self):
        diseased = view_of(13, [enrolled(13, "CARCIK-CD19-P2"), baselined(13, -7, 60.0), infused(13),
                                assessed(13, 28, CR, blasts=2.0)])
        in_cr = view_of(14, [enrolled(14, "CARCIK-CD19-P2"), baselined(14, -7, 1.0), infused(14),
                             assessed(14, 28, CR, blasts=1.0)])
        unknown = view_of(15, [enrolled(15, "CARCIK-CD19-P2"), infused(15), assessed(15, 28, NR, blasts=9.0)])
        [report] = programme_report([ProgrammeRow.of(v) for v in (diseased, in_cr, unknown)])
        morphology = report["day28_by_reading"]["morphology"]
        assert (morphology["n"], morphology["responders"]) == (3, 2)
        assert (morphology["from_baseline"]["n"], morphology["from_baseline"]["responders"]) == (1, 1)
        assert morphology["from_baseline"]["left_out"] == {"n": 2, "why": {"no morphology reading at baseline": 1,
                                                                           "no disease by morphology at baseline": 1}}
        assert report["day28_by_reading"]["flow_cytometry"]["from_baseline"]["n"] == 0

    def test_the_latest_baseline_stands_and_of_one_date_its_correction_whatever_the_order(self):
        events = [enrolled(16, "CARCIK-CD19-P2"), baselined(16, -20, 80.0), baselined(16, -7, 1.0),
                  baselined(16, -7, 40.0, reason="blasts misread")]
        forward, backward = view_of(16, events), view_of(16, events, reverse=True)
        assert forward.baseline == backward.baseline == ((DAY0 - timedelta(days=7)).isoformat(), True, None, None,
                                                          False, True)
        assert SubjectView.from_json(forward.to_json()) == forward
        assert any(t.summary == "baseline: marrow blasts 40 %, not in remission (corrected: blasts misread)"
                   for t in forward.timeline)
