"""Issue 9 item 10: the bundled custody scenarios, one per product kind of the four seeds
(`infra/tooling/examples/custody-*.jsonl`), loaded through the live path into a whole
CellTrail (five service processes, the real broker, real PostgreSQL): the lines up to the
release record, then the facility's qualified person signs it over HTTP with a password (the
release takes effect, issue 9 item 4), then the rest; then, as the files say, the
lymphodepletion of the programmes that have one is prescribed and given in the days before
today (issue 10 item 4), two nurses of the centre check the first bag at the bedside and it
is infused with its prescribed dose. Every line is accepted; each unit ends where the file
leaves it; the infusion names its bag, its prescription and the cells it held."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone
from importlib import resources

import asyncpg
import pytest

from contracts import isbt128
from contracts.access import OrgKind, Role
from infra.runtime.access import credentials
from infra.runtime.access.store import PgAccessStore
from infra.runtime.access.tokens import TokenIssuer
from infra.tooling.access import read_token_key
from infra.tooling.loader import Loader
from tests.access import principal, provisioned
from tests.e2e.driver import http_json, lymphodepletion_lines, sign_latest
from tests.e2e.test_access_matrix import call

pytestmark = pytest.mark.e2e

EXAMPLES = resources.files("infra.tooling").joinpath("examples")
SCENARIOS = sorted(p.name for p in EXAMPLES.iterdir() if p.name.startswith("custody-"))
FACILITY = "IT-GMP-01"
QP, PASSWORD = "qp.it-gmp-01", "the qualified person's own password"
SIGNED_HERE = "signs the release record above"  # the files' marker: the QP signs, then the rest is loaded


def test_one_scenario_per_product_kind_of_the_four_seeds():
    assert [name.split("-")[1] for name in SCENARIOS] == ["000", "001", "002", "003"]


def lines_of(name: str) -> list[str]:
    return EXAMPLES.joinpath(name).read_text().splitlines()


def commands(name: str) -> list[dict]:
    return [json.loads(line) for line in lines_of(name) if line.strip() and not line.startswith("#")]


async def organisations_and_people(database_url: str, home, centre: str) -> dict[str, str]:
    """What the file's header asks for, two nurses at the centre and the facility's qualified
    person (with a password, to sign); their tokens."""
    conn = await asyncpg.connect(database_url)
    try:
        store = PgAccessStore(conn)
        if not await conn.fetchval("SELECT 1 FROM access.organisations WHERE org_id = $1", FACILITY):
            await store.add_organisation(FACILITY, OrgKind.FACILITY, "Cell Factory Milano", actor="test")
        nurses = [principal(f"nurse{n}.{centre.lower()}", (centre, OrgKind.CENTRE, Role.NURSE)) for n in (1, 2)]
        await provisioned(conn, *nurses)  # adds the centre too
        qp = principal(QP, (FACILITY, OrgKind.FACILITY, Role.QUALIFIED_PERSON))
        if not await conn.fetchval("SELECT 1 FROM access.principals WHERE principal_id = $1", QP):
            await provisioned(conn, qp)
            await store.set_password(QP, credentials.hash_password(PASSWORD), actor="test")
        issuer = TokenIssuer(read_token_key(home))
        return {p.principal_id: issuer.issue(p).token for p in (*nurses, qp)}
    finally:
        await conn.close()


@pytest.mark.parametrize("name", SCENARIOS)
async def test_a_scenario_goes_from_collection_to_the_bedside_and_its_first_bag_is_infused(system, name):
    cmds = commands(name)
    centre = next(c["centre_id"] for c in cmds if c["command"] == "RegisterCentre")
    coi = isbt128.normalise(next(c["coi_id"] for c in cmds if c["command"] == "RecordApheresisCollection"))
    units = [coi + d for c in cmds if c["command"] == "RegisterProductUnits" for d in c["divisions"]]
    tokens = await organisations_and_people(system.info.database_url, system.home, centre)
    qp = {"Authorization": f"Bearer {tokens.pop(QP)}"}
    nurses = tokens
    info = system.info
    loader = Loader(info.kafka_bootstrap_servers, info.urls["enrollment"], info.urls["projection"], system.tokens())
    lines = lines_of(name)
    cut = next(n for n, line in enumerate(lines) if SIGNED_HERE in line)
    results = await loader.load(lines[:cut])
    signed = await sign_latest(info.database_url, info.urls["manufacturing"], qp, coi, "manufacturing.ProductReleased",
                               PASSWORD)
    assert signed["signature"]["meaning"] == "approval", signed
    results += await loader.load(lines[cut:])
    assert [r.status for r in results] == ["accepted"] * len(cmds), [r for r in results if r.status != "accepted"]
    subject = loader.refs["p1"]
    # screened against its programme's published definition (issue 10 item 2) before the enrolment
    [screened] = [r for r in results if r.command_type == "ScreenCandidate"]
    assert screened.detail.endswith("v1: eligible"), screened

    programme = next(c["programme_id"] for c in cmds if c["command"] == "EnrollSubject")
    given = await loader.load(lymphodepletion_lines(programme, subject, datetime.now(timezone.utc).date()))
    assert [r.status for r in given] == ["accepted"] * len(given), given
    first, second = sorted(nurses)
    bag = units[0]

    def check() -> dict:
        for _ in range(300):  # until infusion's view of the units has the bag prepared
            status, answer = call("POST", f"{info.urls['infusion']}/bedside-checks",
                                  {"Authorization": f"Bearer {nurses[first]}"},
                                  {"unit_id": isbt128.unit_label(bag), "subject_id": subject,
                                   "second_verifier_token": nurses[second]})
            assert status == 201, answer
            if answer["go"]:
                return answer
            time.sleep(0.2)
        raise AssertionError(f"no go for {bag}: {answer}")

    go = await asyncio.to_thread(check)
    [infused] = await loader.load([json.dumps({"command": "RecordInfusion", "subject_id": subject, "coi_id": coi,
                                               "unit_id": bag, "bedside_check_id": go["check_id"],
                                               "infused_at": go["checked_at"], "principal": first})])
    assert infused.status == "accepted", infused
    [prescribed] = [c for c in cmds if c["command"] == "PrescribeCellDose"]
    assert prescribed["unit_id"] == bag

    for _ in range(150):  # the projection, rebuilt from the log, shows where each bag is
        # as the centre's nurse: the bags' ids are the COI's, removed from a view without identifiers
        view = http_json(f"{info.urls['projection']}/subjects/{subject}", token=nurses[first])
        where = {u["unit_id"]: u["state"] for u in view["units"]}
        if where.get(bag) == "infused":
            break
        await asyncio.sleep(0.2)
    assert where[coi + "00"] == "in_manufacturing" and where[bag] == "infused"
    assert all(where[u] == "released" for u in units[1:])  # the later bags wait at the facility
    assert view["legs_days"]["collection_to_receipt"] is not None and view["phase"] == "infused"
    # the prescribed dose: the dose per kg x the weight, over the bag's 2.5 x 10^6 viable cells/mL
    volume = prescribed.get("cells_per_kg", 1e6) * prescribed["weight_kg"] / 2.5e6
    [given] = [e["summary"] for e in view["timeline"] if e["summary"].startswith("infusion 1,")]
    assert given.endswith(f", {volume:g} mL, {volume * 2.5e6:.3g} cells"), given
