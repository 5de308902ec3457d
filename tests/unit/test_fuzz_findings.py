"""What the fuzzing of issue 12 item 6 found, one case each, without a running system
(tests/fuzz sends the generated inputs to one): text that is not printable refused where it
enters, naming where it is; path and query parameters checked before any SQL; a refusal
recorded whatever the request held; the loader reporting a malformed line as INVALID; a
record with a header that is not UTF-8 reaching the consumer's own decoding."""

from __future__ import annotations

import json

import httpx
import pytest
from aiokafka import ConsumerRecord
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from contracts.base import describe_unprintable, from_json
from contracts.commands import RegisterPatient
from infra.runtime.access.refusals import Refusal, _printable, printable
from infra.runtime.consumer import _parse_batch
from infra.runtime.edge import check_parameters
from infra.runtime.http import BadRequest
from infra.tooling.loader import LineResult, LoadFileError, Loader, parse_line

PATIENT = {"centre_id": "IT-BG-01", "hospital_record_number": "MRN-1", "family_name": "Rossi", "given_name": "Anna",
           "date_of_birth": "1970-01-01", "registered_on": "2025-01-02"}


@pytest.mark.parametrize("text", ["\x00", "a\x00b", "\x01", "\x1b[0m", "\x7f", "\x85", "\ud800", "x\udfff"])
def test_control_characters_and_lone_surrogates_are_not_printable(text: str) -> None:
    why = describe_unprintable(text)
    assert why is not None and "U+" in why


@pytest.mark.parametrize("text", ["", "Rossi", "Åsa Ñúñez", "line\nbreak\tand tab\r", "日本", "🙂"])
def test_printable_text_is(text: str) -> None:
    assert describe_unprintable(text) is None


@pytest.mark.parametrize("as_json", [True, False], ids=["bytes", "mapping"])
@pytest.mark.parametrize(("field", "value", "says"), [
    ("family_name", "Ros\x00si", "character 4 is a control character (U+0000)"),
    ("hospital_record_number", "MRN\x1b", "control character (U+001B)"),
])
def test_from_json_refuses_unprintable_text_naming_the_field(as_json: bool, field: str, value: str,
                                                              says: str) -> None:
    body = {**PATIENT, field: value}
    data = json.dumps(body).encode() if as_json else body
    with pytest.raises(ValidationError) as caught:
        from_json(RegisterPatient, data)
    [error] = caught.value.errors()
    assert error["loc"] == (field,) and says in error["msg"]


def test_half_a_surrogate_pair_is_refused_decoded_or_as_json() -> None:
    with pytest.raises(ValidationError) as caught:
        from_json(RegisterPatient, {**PATIENT, "given_name": "A\ud800"})
    assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [
        (("given_name",), "text must be printable: character 2 is half of a surrogate pair (U+D800)")]
    with pytest.raises(ValidationError, match="Invalid JSON"):  # JSON's escape of one is not JSON text
        from_json(RegisterPatient, json.dumps({**PATIENT, "given_name": "A\ud800"}))


def test_from_json_refuses_a_field_name_with_a_nul_and_a_number_that_is_not_finite() -> None:
    with pytest.raises(ValidationError) as caught:
        from_json(RegisterPatient, b'{"centre_id": NaN, "\\u0000": 1}')
    found = {e["loc"]: e["msg"] for e in caught.value.errors()}
    assert found[("centre_id",)] == "a number must be finite, not nan"
    assert "a field name" in found[("'\\x00'",)]


def test_from_json_still_reads_valid_json() -> None:
    assert from_json(RegisterPatient, json.dumps(PATIENT)).family_name == "Rossi"


def _request(path: str, query: bytes = b"", path_params: dict | None = None) -> Request:
    return Request({"type": "http", "method": "GET", "path": path, "query_string": query, "headers": [],
                    "path_params": path_params or {}})


@pytest.mark.parametrize(("path_params", "query", "field"), [
    ({"subject_id": "S-\x00"}, b"", "path parameter subject_id"),
    ({}, b"programme=a%00b", "query parameter programme"),
    ({}, b"%00=x", "query parameter name '\\x00'"),
])
def test_a_parameter_that_is_not_printable_is_422_naming_it(path_params, query, field) -> None:
    with pytest.raises(BadRequest) as caught:
        check_parameters(_request("/x", query, path_params))
    body = json.loads(caught.value.response.body)
    assert caught.value.response.status_code == 422 and body["code"] == "INVALID_PARAMETER"
    assert body["details"][0]["field"] == field


def test_printable_parameters_pass() -> None:
    check_parameters(_request("/subjects/S-1", b"programme=CART-BALL-RR&ci=log", {"subject_id": "S-1"}))


def test_a_refusal_is_recorded_with_what_postgresql_cannot_store_escaped() -> None:
    r = _printable(Refusal(service="projection", method="GET", route="/subjects/{subject_id}", path="/subjects/a\x00b",
                           status=422, code="INVALID_PARAMETER", reason="x\ud800" + "y" * 5000, principal_id=None,
                           credential="none", subject_id="a\x00b"))
    assert r.path == "/subjects/a\\x00b" and r.subject_id == "a\\x00b"
    assert r.reason.startswith("x\\ud800") and len(r.reason) == 4000
    assert printable("tab\tand\nline") == "tab\tand\nline"


@pytest.mark.parametrize(("line", "says"), [
    ('{"command": ["RegisterCentre"]}', 'unknown or missing "command": ["RegisterCentre"]'),
    ('{"command": {"a": 1}}', 'unknown or missing "command"'),
    ('{"command": 12}', 'unknown or missing "command": 12'),
    ('{"command": "RegisterCentre", "centre_id": ' + "9" * 5000 + "}", "not valid JSON: Exceeds the limit"),
    ('{"command": ' + "[" * 5000 + "]" * 5000 + "}", "not valid JSON"),
    ('{"command": "EnrollSubject", "subject_ref": 7}', '"subject_ref" must be a non-empty string, not 7'),
    ('{"command": "EnrollSubject", "subject_ref": "p\\u0000"}', '"subject_ref": text must be printable'),
])
def test_a_malformed_line_is_invalid_with_its_reason(line: str, says: str) -> None:
    with pytest.raises(LoadFileError) as caught:
        parse_line(1, line)
    assert says in str(caught.value)
    result = Loader("127.0.0.1:1", "http://127.0.0.1:1", "http://127.0.0.1:1", None).validate(3, line)
    assert isinstance(result, LineResult) and result.status == "invalid" and says in result.detail


async def test_a_record_whose_header_is_not_utf8_reaches_the_consumer_with_its_headers() -> None:
    """FastStream decodes header values as UTF-8: such a record failed its fetch for ever."""
    record = ConsumerRecord("t", 0, 7, 0, 0, None, b"x", None, 0, 1, [("celltrail-message-type", b"\xff\xfe")])
    seen = []

    async def original(records):
        for r in records:
            {k: v.decode() for k, v in r.headers}  # what FastStream's batch parser does
        seen.append(records)
        return type("Message", (), {"raw_message": records})()

    message = await _parse_batch((record,), original)
    assert message.raw_message == (record,) and message.raw_message[0].headers == record.headers
    with pytest.raises(UnicodeDecodeError):
        await original((record,))


async def test_an_endpoint_answers_422_not_500_for_a_nul_in_its_path() -> None:
    async def subject(request: Request) -> JSONResponse:
        try:
            check_parameters(request)
        except BadRequest as bad:
            return bad.response
        return JSONResponse({"subject_id": request.path_params["subject_id"]})

    app = Starlette(routes=[Route("/subjects/{subject_id}", subject)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        bad = await client.get("/subjects/ab%00cd")
        good = await client.get("/subjects/S-1")
    assert bad.status_code == 422 and "U+0000" in bad.json()["error"]
    assert good.status_code == 200
