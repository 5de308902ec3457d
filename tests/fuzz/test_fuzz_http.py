"""Every HTTP endpoint of every service, fuzzed (issue 12 item 6).

Two generators:
- schemathesis, from each service's own OpenAPI document (`GET /openapi.json`): for every
  operation, requests that fit the document (positive) and requests that break it
  (negative: wrong types, missing and unknown fields, out-of-range values), FUZZ_EXAMPLES
  of them per operation and service. Nine in ten carry the CLI's token (the nurse's for the
  bedside check), so they reach validation; the rest none, or a garbage one.
- our own hypothesis strategies, for what schemathesis rarely makes: a valid registration
  and bedside check with one field broken (a NUL or another control character, half a
  surrogate pair, a wrong type, a huge value, a field missing or unknown, a non-finite
  number), bodies that are not JSON or not UTF-8, and path and query parameters of any
  text or bytes (NUL, bad UTF-8) on every route that takes them.

Checked: no answer is a 5xx (503 included: nothing here is saturated or unreachable), every
process is alive and healthy at the end, and the event counts of every store changed only
by what the inputs the services accepted caused (`EFFECTS`), nothing else.
"""

from __future__ import annotations

import json
import urllib.parse
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.fuzz.conftest import (CENTRE, NURSE, PROGRAMME, TALLY, WITNESS, Fuzzed, assert_alive, changed, counts,
                                 fuzz_settings, http, json_of, wait_caught_up)

pytestmark = pytest.mark.e2e

# What an accepted request (or a recorded refusal) adds to the stores: (method, route,
# status) -> {(store, event type): events}. A signature refused after the caller was
# authenticated and the body read is recorded as `common.CommandRejected` in the signing
# service's store (infra/runtime/signing.py); the edge's own refusals record nothing in any
# store (access.refusals is not an event store). Any other answer changes no store.
SIGNATURE_REFUSALS = (401, 403, 404, 409)
EFFECTS: dict[tuple[str, str, int], dict[tuple[str, str], int]] = {
    ("POST", "/patients", 201): {("enrollment", "enrollment.PatientRegistered"): 1},
    ("POST", "/screenings", 201): {("enrollment", "enrollment.CandidateScreened"): 1},
    ("POST", "/patients/{subject_id}/erasure", 200): {("enrollment", "enrollment.IdentityErased"): 1},
    ("POST", "/bedside-checks", 201): {("infusion", "infusion.BedsideCheckRecorded"): 1},
    ("POST", "/cois", 201): {("manufacturing", "manufacturing.CoiIssued"): 1},
}
# Accepted writes whose events this test does not predict: none may be accepted here (the
# seeded system holds no unit, so no custody step, reading or signature can be).
UNPREDICTED = {("POST", "/custody-steps"), ("POST", "/temperature-readings"), ("POST", "/signatures")}
EDGE_CODES = {"UNAUTHENTICATED", "INVALID_PARAMETER", "INVALID_IDEMPOTENCY_KEY", "SATURATED", "UNAVAILABLE"}
# Operations that take no input and do heavy work on every call (replay every topic, republish
# every event): a few calls each, not FUZZ_EXAMPLES.
HEAVY = {("POST", "/admin/rebuild"), ("POST", "/admin/republish")}


class Answers:
    """Every answer, by entry point; the 5xx with what was sent; what the answers add to the stores."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.expected: Counter = Counter()
        self.unpredicted: list[str] = []

    def note(self, service: str, method: str, route: str, status: int | None, body: bytes, sent: str) -> None:
        entry = f"http {service} {method} {route}"
        if status is None:
            TALLY.count(entry, "no answer")
            self.failures.append(f"{entry}: no answer ({body[:200]!r}) to {sent[:500]}")
            return
        TALLY.count(entry, str(status))
        if status >= 500:
            self.failures.append(f"{entry}: {status} {body[:300]!r} to {sent[:500]}")
        answer = json_of(body)
        code = answer.get("code") if isinstance(answer, dict) else None
        if route == "/signatures" and status in SIGNATURE_REFUSALS and code not in EDGE_CODES:
            self.expected[(service, "common.CommandRejected")] += 1
        elif 200 <= status < 300 and method == "POST":
            if (method, route) in UNPREDICTED:
                self.unpredicted.append(f"{entry}: {status} {body[:200]!r} to {sent[:300]}")
            elif (method, route, status) in EFFECTS:
                if route == "/patients" and isinstance(answer, dict) and not answer.get("created", True):
                    return  # the same person again: nothing recorded
                self.expected.update(EFFECTS[(method, route, status)])


def credentials(fz: Fuzzed, route: str) -> st.SearchStrategy[dict[str, str]]:
    """Nine in ten valid (so the input reaches validation); else none, or garbage."""
    own = fz.headers[NURSE] if route == "/bedside-checks" else fz.cli()
    garbage = st.one_of(
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=300).map(
            lambda t: {"Authorization": f"Bearer {t}"}),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=300).map(lambda t: {"X-API-Key": t}),
        st.just({**own, "X-API-Key": "ctk_x_y"}))
    return st.one_of(st.just(own), st.just(own), st.just(own), st.just(own), st.just(own), st.just(own),
                     st.just(own), st.just(own), st.just(own), st.just({}), garbage)


def _operations(fz: Fuzzed):
    for service, url in fz.urls.items():
        status, body, _ = http("GET", f"{url}/openapi.json", fz.cli())
        assert status == 200, (service, status)
        schema = schemathesis.openapi.from_dict(json.loads(body))
        for result in schema.get_all_operations():
            yield service, url, result.ok()


def test_every_operation_from_the_openapi_documents(fuzzed: Fuzzed) -> None:
    before = counts(fuzzed)
    answers = Answers()
    session = requests.Session()
    operations = list(_operations(fuzzed))
    assert len(operations) >= 40, f"only {len(operations)} operations documented"
    for service, url, op in operations:
        route, method = op.path, op.method.upper()
        cases = st.one_of(op.as_strategy(generation_mode=GenerationMode.POSITIVE),
                          op.as_strategy(generation_mode=GenerationMode.NEGATIVE))

        @fuzz_settings(2 if (method, route) in HEAVY else None)
        @given(case=cases, auth=credentials(fuzzed, route))
        def send(case, auth) -> None:
            headers = {k: v for k, v in (case.headers or {}).items()
                       if k.lower() not in ("authorization", "x-api-key")}
            sent = f"{case.method} {case.formatted_path} query={case.query!r} headers={headers!r} " \
                   f"body={case.body!r}"[:2000]
            try:
                response = case.call(base_url=url, session=session, headers={**headers, **auth}, timeout=60)
            except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError, ValueError):
                TALLY.count(f"http {service} {method} {route}", "not sendable")  # the client refused to send it
                return
            except requests.exceptions.RequestException as exc:
                answers.note(service, method, route, None, repr(exc).encode(), sent)
                return
            answers.note(service, method, route, response.status_code, response.content, sent)

        send()
    _check(fuzzed, before, answers)


# -- our own strategies -------------------------------------------------------------------

def _text_with_control() -> st.SearchStrategy[str]:
    """Text with at least one control character or half of a surrogate pair."""
    bad = st.sampled_from(["\x00", "\x01", "\x1b", "\x7f", "\x85", "\ud800", "\udfff", "\x00" * 3])
    return st.tuples(st.text(max_size=20), bad, st.text(max_size=20)).map("".join)


def _any_json(depth: int = 2) -> st.SearchStrategy[Any]:
    leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10 ** 300, max_value=10 ** 301),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), _text_with_control())
    return st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                        max_leaves=8)


HUGE = st.one_of(st.just("x" * 100_000), st.just(10 ** 400), st.just(-(10 ** 400)), st.just(1e308),
                 st.just([0] * 20_000), st.just({"k": "v" * 50_000}))


def mutated(template: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """The JSON of `template` with one field broken (or the whole body replaced)."""
    keys = sorted(template)

    def one(draw) -> bytes:
        how = draw(st.sampled_from(["wrong type", "control", "huge", "missing", "unknown", "non-finite",
                                    "not an object", "not json", "not utf-8", "nested", "valid-ish"]))
        body = dict(template)
        key = draw(st.sampled_from(keys))
        if how == "wrong type":
            body[key] = draw(st.one_of(st.integers(), st.booleans(), st.none(), st.lists(st.integers(), max_size=3),
                                       st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
                                       st.floats(allow_nan=False)))
        elif how == "control":
            body[key] = draw(_text_with_control())
        elif how == "huge":
            body[key] = draw(HUGE)
        elif how == "missing":
            del body[key]
        elif how == "unknown":
            body[draw(st.one_of(st.text(min_size=1, max_size=30), _text_with_control()))] = draw(_any_json())
        elif how == "non-finite":
            body[key] = draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
        elif how == "not an object":
            return json.dumps(draw(st.one_of(st.lists(_any_json(), max_size=3), st.text(), st.integers())),
                              ensure_ascii=True).encode()
        elif how == "not json":
            return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
        elif how == "not utf-8":
            return draw(st.binary(max_size=200)) + b"\xff\xfe\xc3("
        elif how == "nested":
            return b"[" * 10_000 + b"]" * 10_000
        else:  # a plausible value of another field's kind: may be accepted
            body[key] = draw(st.one_of(st.text(max_size=40), st.sampled_from(["2025-01-02", "1970-01-01", CENTRE])))
        return json.dumps(body, ensure_ascii=True, allow_nan=True).encode()

    return st.composite(lambda draw: one(draw))()


def _quoted(value: str | bytes) -> str:
    return urllib.parse.quote(value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass"), safe="")


PARAMETER = st.one_of(st.text(max_size=60), _text_with_control(), st.binary(max_size=40),
                      st.just("x" * 4000))


def test_bodies_and_parameters_broken_one_field_at_a_time(fuzzed: Fuzzed) -> None:
    """A valid registration, screening, COI request and bedside check, each with one thing
    wrong; every path and query parameter as any text or bytes."""
    fz, answers = fuzzed, Answers()
    before = counts(fz)
    with_json = {"content-type": "application/json"}
    register = {"centre_id": CENTRE, "hospital_record_number": "FZ-2", "family_name": "Bianchi", "given_name": "Luca",
                "date_of_birth": "1980-05-06", "registered_on": "2025-02-01"}
    screen = {"subject_id": fz.subject_id, "programme_id": PROGRAMME, "centre_id": CENTRE,
              "screened_on": "2025-01-03", "facts": {}}
    bedside = {"unit_id": "E0001 25 000001 A0", "subject_id": fz.subject_id,
               "second_verifier_token": fz.tokens[WITNESS], "volume_ml": 50.0}
    erasure = {"reason": "the patient asked"}
    posts = [("enrollment", "/patients", register, fz.cli()), ("enrollment", "/screenings", screen, fz.cli()),
             ("manufacturing", "/cois", {"subject_id": fz.subject_id}, fz.cli()),
             ("infusion", "/bedside-checks", bedside, fz.headers[NURSE])]
    for service, route, template, auth in posts:
        @fuzz_settings()
        @given(body=mutated(template))
        def post(body: bytes) -> None:
            status, answer, _ = http("POST", f"{fz.urls[service]}{route}", {**with_json, **auth}, body)
            answers.note(service, "POST", route, status, answer, f"POST {route} {body[:1500]!r}")

        post()

    # the erasure's body broken, of a subject that does not exist (the seeded one stays)
    @fuzz_settings()
    @given(body=mutated(erasure), subject=PARAMETER)
    def erase(body: bytes, subject) -> None:
        route = "/patients/{subject_id}/erasure"
        status, answer, _ = http("POST", f"{fz.urls['enrollment']}/patients/{_quoted(subject)}/erasure",
                                 {**with_json, **fz.cli()}, body)
        answers.note("enrollment", "POST", route, status, answer, f"POST {route} subject={subject!r} {body[:500]!r}")

    erase()

    gets = [("projection", "/subjects/{subject_id}", None), ("projection", "/report", "programme"),
            ("projection", "/report", "ci"), ("projection", "/units", "state"), ("projection", "/units", "quarantined"),
            ("projection", "/subjects", "x"), ("manufacturing", "/records/{event_id}", None),
            ("manufacturing", "/units/{unit_id}/fhir", None), ("infusion", "/infusions/{unit_id}/fhir", None),
            ("enrollment", "/command-outcomes", "key")]
    for service, route, query in gets:
        @fuzz_settings()
        @given(value=PARAMETER, name=st.one_of(st.just(query), PARAMETER))
        def get(value, name) -> None:
            if query is None:
                path = route.replace(route[route.index("{"):route.index("}") + 1], _quoted(value))
            else:
                path = f"{route}?{_quoted(name or query)}={_quoted(value)}"
            status, answer, _ = http("GET", f"{fz.urls[service]}{path}", fz.cli())
            answers.note(service, "GET", route, status, answer, f"GET {path[:1500]}")

        get()
    _check(fz, before, answers)


def _check(fz: Fuzzed, before: Counter, answers: Answers) -> None:
    assert not answers.failures, f"{len(answers.failures)} answers were 5xx or none:\n" + "\n".join(answers.failures[:40])
    assert not answers.unpredicted, "accepted writes this test cannot account for:\n" + "\n".join(answers.unpredicted)
    wait_caught_up(fz)
    assert_alive(fz)
    got = changed(before, counts(fz))
    expected = {k: v for k, v in answers.expected.items() if v}
    assert got == expected, f"the stores changed by {got}, the accepted inputs account for {expected}"
