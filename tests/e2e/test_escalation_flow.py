"""Issue 10 items 3 and 7: seed 001's dose escalation end to end, through a whole CellTrail (five
service processes, the real broker, real PostgreSQL): the bundled scenario
(`infra/tooling/examples/escalation-001-nk-cells.jsonl`) screens, enrols, infuses and evaluates
six patients with a scripted sequence of DLTs, and the design's decisions, recorded by
enrollment, are the ones the 3+3's published rules give (the scenario's header): each subject
assigned level 1, wait, wait, expand, then the cap stops the escalation with level 1
recommended; a seventh enrolment is refused; the report counts each level; the projection
publishes the MTD once on the outcomes topic (issue 11 item 4), and a rebuild publishes it
not again."""

from __future__ import annotations

import json
from importlib import resources

import asyncio

import asyncpg
import pytest

from contracts import topics
from infra.tooling.loader import Loader
from tests.e2e.driver import Driver, envelopes, http_json, read_topic

pytestmark = pytest.mark.e2e

SCENARIO = resources.files("infra.tooling").joinpath("examples", "escalation-001-nk-cells.jsonl")


async def escalation_events(database_url: str) -> list[tuple[str, dict]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT event_type, payload FROM enrollment.events WHERE stream_id = $1"
                                " ORDER BY stream_version", "escalation-NK-PHALL-P1")
        return [(r["event_type"], json.loads(r["payload"])) for r in rows]
    finally:
        await conn.close()


async def outcomes(bootstrap: str) -> list:
    return [e for e in envelopes(await read_topic(bootstrap, topics.OUTCOMES)) if e.event_type.startswith("outcomes.")]


async def mtd_outcomes(bootstrap: str, timeout: float = 60) -> list:
    """The MTD outcomes on the outcomes topic, once one has been published (the projection
    applies enrollment's events and its relay publishes asynchronously)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [e for e in await outcomes(bootstrap) if e.event_type == "outcomes.MtdDetermined"]
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.5)


async def test_the_scripted_dlts_give_the_designs_decisions(system):
    info = system.info
    loader = Loader(info.kafka_bootstrap_servers, info.urls["enrollment"], info.urls["projection"], system.tokens())
    lines = SCENARIO.read_text().splitlines()
    results = await loader.load(lines)
    assert [r.status for r in results] == ["accepted"] * len(results), [r for r in results if r.status != "accepted"]

    events = await escalation_events(info.database_url)
    assigned = [(p["subject_id"], p["dose_level"], p["cohort"], p["decision"]["action"]) for t, p in events
                if t == "enrollment.DoseLevelAssigned"]
    subjects = [loader.refs[f"p{n}"] for n in range(1, 7)]
    assert assigned == [(subjects[0], 1, 1, "start"), (subjects[1], 1, 1, "fill_cohort"),
                        (subjects[2], 1, 1, "fill_cohort"), (subjects[3], 1, 2, "expand"),
                        (subjects[4], 1, 2, "fill_cohort"), (subjects[5], 1, 2, "fill_cohort")]
    decided = [(p["subject_id"], p["dlt"], p["decision"]["action"], p["decision"]["next_dose_level"])
               for t, p in events if t == "enrollment.EscalationDecided"]
    assert decided == [(subjects[0], True, "wait", None), (subjects[1], False, "wait", None),
                       (subjects[2], False, "expand", 1), (subjects[3], False, "wait", None),
                       (subjects[4], False, "wait", None), (subjects[5], False, "stop_max_sample_size", None)]
    [(_, declared)] = [(t, p) for t, p in events if t == "enrollment.MtdDeclared"]
    assert (declared["mtd_level"], declared["recommended_level"]) == (None, 1)
    assert events[-1][0] == "enrollment.MtdDeclared"  # declared with the decision that stopped it

    [registered, refused] = await loader.load([
        json.dumps({"command": "RegisterPatient", "ref": "p7", "centre_id": "IT-RM-01", "hospital_record_number":
                    "RM-01-0107", "family_name": "Demo", "given_name": "Paziente 7", "date_of_birth": "1967-07-17",
                    "registered_on": "2025-08-01"}),
        json.dumps({"command": "EnrollSubject", "subject_ref": "p7", "programme_id": "NK-PHALL-P1",
                    "centre_id": "IT-RM-01", "enrolled_on": "2025-08-04"})])
    assert registered.status == "accepted" and refused.status == "refused", refused
    assert refused.detail.startswith("ESCALATION_STOPPED"), refused

    report = {r["programme_id"]: r for r in http_json(f"{info.urls['projection']}/report", token=system.token())}
    # the investigator's one DLT is the one the programme's definition finds in the adverse events
    assert report["NK-PHALL-P1"]["escalation"] == [{"level": 1, "enrolled": 6, "evaluable": 6, "dlts": 1,
                                                    "dlts_by_definition": 1, "evaluated_against_definition": 0}]
    # the programme's response (issue 11 item 3): a molecular response by BCR::ABL1 qRT-PCR within a
    # year, from the scenario's raw results; no day-28 response (seed 001 reads none)
    response = report["NK-PHALL-P1"]["response"]
    assert (response["criteria"], response["responder"], response["within_days"]) == (
        "bcr_abl1_qrt_pcr", "molecular_response", 365)
    assert (response["n"], response["responders"], response["best"]) == (
        4, 3, {"undetectable": 1, "positive_not_quantifiable": 2, "positive": 1})
    assert response["left_out"]["n"] == 2 and response["log_reduction"]["median"] == 1.0
    assert report["NK-PHALL-P1"]["day28_evaluable"] == 0

    # issue 11 item 4: the MTD as an outcome for downstream consumers, once, about the programme
    [mtd] = await mtd_outcomes(info.kafka_bootstrap_servers)
    assert (mtd.subject_id, mtd.stream_id) == (None, "outcomes-programme-NK-PHALL-P1")
    assert {k: mtd.payload[k] for k in ("programme_id", "mtd_level", "recommended_level", "action", "declared_on")} == {
        "programme_id": "NK-PHALL-P1", "mtd_level": None, "recommended_level": 1,
        "action": "stop_max_sample_size", "declared_on": declared["declared_on"]}
    # a rebuild replays enrollment's topic, MtdDeclared with it: the same outcome, not published again
    published = len(await outcomes(info.kafka_bootstrap_servers))
    projection = info.urls["projection"]

    def read_models():
        return (http_json(f"{projection}/subjects", token=system.token()),
                http_json(f"{projection}/report", token=system.token()))

    before = read_models()
    assert http_json(f"{projection}/admin/rebuild", {}, "POST", token=system.token())["dropped_views"] >= 6
    await Driver.wait_for(lambda: read_models() == before and http_json(f"{projection}/status",
                                                                        token=system.token()).get("lag") == 0,
                          60, "the rebuilt read models to equal the incremental ones")
    assert len(await mtd_outcomes(info.kafka_bootstrap_servers)) == 1
    assert len(await outcomes(info.kafka_bootstrap_servers)) == published
