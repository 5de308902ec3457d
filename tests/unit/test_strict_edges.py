"""Issue 12 item 5: contract fields are strict at the edges, and a date or time that is not
one is refused naming the form expected and the value received.

Every edge reads what it is sent as JSON in pydantic's strict mode (contracts/base.py,
`from_json`): an HTTP body (infra/runtime/http.py), a load file's line
(infra/tooling/loader.py) and a command envelope's payload from a topic
(contracts/registry.py, `parse_command`). `"circulating_blasts": "no"` and a number sent as a
string were accepted before; JSON's own values still are."""

from __future__ import annotations

import json
import uuid
from datetime import date

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from contracts.base import from_json
from contracts.commands import RecordApheresisCollection, RecordResponseAssessment, RegisterPatient
from contracts.envelope import CommandEnvelope
from contracts.registry import parse_command
from infra.runtime.http import BadRequest, parse_body
from infra.tooling.loader import LineResult, Loader

SUBJECT = "S-0123456789AB"
ASSESSMENT = {"subject_id": SUBJECT, "assessed_on": "2025-03-29", "marrow_blasts_percent": 1.5,
              "circulating_blasts": False, "extramedullary_disease": False, "anc_per_ul": 2500,
              "platelets_per_ul": 150000, "flow_mrd_percent": None}

# The two examples, and their kin: a bool or a number as text, a number as a bool,
# text as a number.
NOT_STRICT = [
    pytest.param({"circulating_blasts": "no"}, "circulating_blasts", id="a-bool-as-no"),
    pytest.param({"circulating_blasts": "false"}, "circulating_blasts", id="a-bool-as-text"),
    pytest.param({"circulating_blasts": 0}, "circulating_blasts", id="a-bool-as-0"),
    pytest.param({"anc_per_ul": "12"}, "anc_per_ul", id="a-number-as-text"),
    pytest.param({"marrow_blasts_percent": True}, "marrow_blasts_percent", id="a-number-as-a-bool"),
    pytest.param({"subject_id": 123}, "subject_id", id="text-as-a-number"),
]


def with_(**change) -> dict:
    return {**ASSESSMENT, **change}


class TestFromJson:
    def test_json_native_values_are_taken(self):
        cmd = from_json(RecordResponseAssessment, ASSESSMENT)
        assert (cmd.assessed_on, cmd.circulating_blasts, cmd.anc_per_ul) == (date(2025, 3, 29), False, 2500.0)

    def test_bytes_and_a_mapping_are_read_alike(self):
        assert from_json(RecordResponseAssessment, json.dumps(ASSESSMENT).encode()) == from_json(
            RecordResponseAssessment, ASSESSMENT)

    @pytest.mark.parametrize(("change", "field"), NOT_STRICT)
    def test_nothing_is_coerced(self, change, field):
        with pytest.raises(ValidationError) as refused:
            from_json(RecordResponseAssessment, with_(**change))
        assert [e["loc"] for e in refused.value.errors()] == [(field,)]

    def test_the_python_side_still_builds_commands_as_before(self):
        # services and tests construct commands from Python values; only the edges are strict
        assert RecordResponseAssessment.model_validate(with_(anc_per_ul="12")).anc_per_ul == 12.0


class TestDatesAndTimesNameTheirForm:
    @pytest.mark.parametrize("value", ["2025-13-01", "01/03/2025", "2025-03-01T00:00:00", 20250301, "1899-12-31"])
    def test_a_date_names_yyyy_mm_dd_and_the_value(self, value):
        with pytest.raises(ValidationError) as refused:
            from_json(RecordResponseAssessment, with_(assessed_on=value))
        [error] = refused.value.errors()
        assert "YYYY-MM-DD" in error["msg"] and f"got {json.dumps(value)}" in error["msg"]

    @pytest.mark.parametrize("value", ["2025-03-01T09:30:00", "2025-03-01", "yesterday", 1740821400,
                                       "2200-01-01T00:00:00Z"])
    def test_an_instant_names_iso_8601_with_an_offset_and_the_value(self, value):
        payload = {"coi_id": "W0001250000011", "subject_id": SUBJECT, "centre_id": "OSR-MILANO",
                   "collected_at": value}
        with pytest.raises(ValidationError) as refused:
            from_json(RecordApheresisCollection, payload)
        [error] = refused.value.errors()
        assert "ISO 8601 with a UTC offset" in error["msg"] and "2025-03-01T09:30:00+01:00" in error["msg"]
        assert f"got {json.dumps(value)}" in error["msg"]

    @pytest.mark.parametrize(("value", "kind"), [(19800517, "a number"), ("17/05/1980", "text")])
    def test_a_date_of_birth_names_the_form_and_the_kind_of_value_never_the_value(self, value, kind):
        # an identifier: a refusal is recorded and logged
        body = {"centre_id": "OSR-MILANO", "hospital_record_number": "MRN-1", "family_name": "B", "given_name": "A",
                "date_of_birth": value, "registered_on": "2024-03-01"}
        with pytest.raises(ValidationError) as refused:
            from_json(RegisterPatient, body)
        [error] = refused.value.errors()
        assert error["msg"] == ("expected a date as YYYY-MM-DD (from 1900-01-01 to 2199-12-31), got "
                                f"{kind} (not repeated here: an identifier)")

    def test_a_long_value_is_shortened(self):
        with pytest.raises(ValidationError) as refused:
            from_json(RecordResponseAssessment, with_(assessed_on="9" * 10_000))
        assert len(refused.value.errors()[0]["msg"]) < 200


class TestTheCommandTopic:
    """What a consumer decodes from a command topic (infra/runtime/consumer.py, `decode`)."""

    @staticmethod
    def received(payload: dict) -> CommandEnvelope:
        raw = json.dumps({"command_id": str(uuid.uuid4()), "command_type": "RecordResponseAssessment",
                          "schema_version": 1, "issued_at": "2025-03-29T10:00:00Z", "actor": "celltrail-cli",
                          "correlation_id": str(uuid.uuid4()), "payload": payload, "credential": "t"})
        return CommandEnvelope.model_validate_json(raw)

    def test_a_valid_command_is_read(self):
        assert parse_command(self.received(ASSESSMENT)) == from_json(RecordResponseAssessment, ASSESSMENT)

    @pytest.mark.parametrize(("change", "field"), NOT_STRICT)
    def test_a_command_with_a_value_of_another_type_is_invalid(self, change, field):
        with pytest.raises(ValidationError) as refused:
            parse_command(self.received(with_(**change)))
        assert [e["loc"] for e in refused.value.errors()] == [(field,)]

    def test_what_the_loader_sends_is_read_back_unchanged(self):
        cmd = from_json(RecordResponseAssessment, ASSESSMENT)
        env = CommandEnvelope.wrap(cmd, actor="celltrail-cli", credential="t")
        assert parse_command(CommandEnvelope.model_validate_json(env.model_dump_json())) == cmd


class TestTheLoadFile:
    @pytest.fixture
    def loader(self) -> Loader:
        return Loader("127.0.0.1:1", "http://127.0.0.1:1", "http://127.0.0.1:1", None)  # never contacted

    def line(self, **change) -> str:
        return json.dumps({"command": "RecordResponseAssessment", **with_(**change)})

    def test_a_valid_line_is_taken(self, loader):
        _, cmd = loader.validate(1, self.line())
        assert cmd.circulating_blasts is False

    @pytest.mark.parametrize(("change", "field"), NOT_STRICT)
    def test_a_line_with_a_value_of_another_type_is_invalid_naming_the_field(self, loader, change, field):
        result = loader.validate(7, self.line(**change))
        assert isinstance(result, LineResult) and result.status == "invalid"
        assert str(result).startswith(f"line 7 RecordResponseAssessment: INVALID: {field}: ")

    def test_a_bad_date_is_invalid_naming_the_form_and_the_value(self, loader):
        result = loader.validate(3, self.line(assessed_on="29/03/2025"))
        assert str(result) == ('line 3 RecordResponseAssessment: INVALID: assessed_on: expected a date as '
                               'YYYY-MM-DD (from 1900-01-01 to 2199-12-31), got "29/03/2025"')


async def _echo(request: Request) -> JSONResponse:
    try:
        cmd = await parse_body(request, RecordResponseAssessment)
    except BadRequest as bad:
        return bad.response
    return JSONResponse(cmd.model_dump(mode="json"))


class TestAnHttpBody:
    @pytest.fixture
    async def client(self):
        app = Starlette(routes=[Route("/assessments", _echo, methods=["POST"])])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge") as client:
            yield client

    async def test_a_valid_body_is_taken(self, client):
        answer = await client.post("/assessments", json=ASSESSMENT)
        assert answer.status_code == 200 and answer.json()["circulating_blasts"] is False

    @pytest.mark.parametrize(("change", "field"), NOT_STRICT)
    async def test_a_body_with_a_value_of_another_type_is_422_naming_the_field(self, client, change, field):
        answer = await client.post("/assessments", json=with_(**change))
        assert answer.status_code == 422
        assert [d["field"] for d in answer.json()["details"]] == [field]

    async def test_a_bad_date_is_422_naming_the_form_and_the_value(self, client):
        answer = await client.post("/assessments", json=with_(assessed_on="2025-02-30"))
        assert answer.status_code == 422 and answer.json()["details"] == [{
            "field": "assessed_on",
            "error": 'expected a date as YYYY-MM-DD (from 1900-01-01 to 2199-12-31), got "2025-02-30"'}]
