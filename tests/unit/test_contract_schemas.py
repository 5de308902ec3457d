"""Published JSON Schemas (contracts/schemas/) against the contract models.

(a) every contract has a published schema file for its current version;
(b) a model whose schema drifted from its published file fails: incompatibly (bump
    schema_version and add an upcaster) or compatibly (re-run the export);
(c) `contracts.compat.incompatibilities` on small synthetic schemas;
(d) v1 ResponseAssessed payloads valid against the published v1 schema upcast to payloads
    the v2 model accepts;
(e) no contract that travels on Kafka has a field named like a direct identifier.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from contracts import compat, export
from contracts.commands import EraseIdentity, RegisterPatient, ScreenCandidate, SignRecord
from contracts.compat import incompatibilities, validation_errors
from contracts.envelope import CommandEnvelope, EventEnvelope
from contracts.events import ResponseAssessed
from contracts.registry import COMMAND_TYPES, EVENT_TYPES, UPCASTERS, upcast, upcast_response_assessed_v1_to_v2
from contracts.topics import COMMAND_TOPICS

SCHEMAS = export.SCHEMAS_DIR
CONTRACTS = export.contracts()
FILE_RE = re.compile(r"^(?P<name>.+)\.v(?P<version>[1-9][0-9]*)\.json$")


# --- (a) and (b): published files ------------------------------------------------------------
@pytest.mark.parametrize("item", CONTRACTS, ids=lambda c: c.filename)
def test_current_version_is_published(item):
    assert (SCHEMAS / item.filename).is_file(), (
        f"{item.filename} is missing: run `python -m contracts.export` and commit contracts/schemas/")


@pytest.mark.parametrize("item", CONTRACTS, ids=lambda c: c.filename)
def test_model_matches_its_published_schema(item):
    path = SCHEMAS / item.filename
    if not path.is_file():
        pytest.skip("not published (see test_current_version_is_published)")
    published = json.loads(path.read_text(encoding="utf-8"))
    current = item.schema()
    if current == published:
        assert path.read_text(encoding="utf-8") == export.render(current), (
            "same schema, different formatting: re-run python -m contracts.export")
        return
    problems = incompatibilities(published, current)
    if problems:
        pytest.fail(f"{item.name} changed incompatibly at schema_version {item.version}; bump schema_version "
                    f"and add an upcaster (contracts/registry.py):\n  - " + "\n  - ".join(problems))
    pytest.fail(f"{item.name} v{item.version}: compatible change: re-run python -m contracts.export")


def test_schema_files_are_all_known_contracts_and_older_versions_are_upcast():
    current = {c.name: c.version for c in CONTRACTS}
    for path in sorted(SCHEMAS.glob("*.json")):
        m = FILE_RE.match(path.name)
        assert m, f"unexpected file name {path.name}"
        name, version = m["name"], int(m["version"])
        assert name in current, f"{path.name}: no such contract"
        assert version <= current[name], f"{path.name}: newer than the model (v{current[name]})"
        for v in range(version, current[name]):
            assert (name, v) in UPCASTERS, f"{path.name} is published but there is no upcaster from v{v}"
        json.loads(path.read_text(encoding="utf-8"))


def test_export_is_deterministic_and_never_touches_older_versions(tmp_path: Path):
    old = tmp_path / "assessment.ResponseAssessed.v1.json"
    old.write_text('{"sentinel": true}\n')
    first = export.export(tmp_path)
    assert old.read_text() == '{"sentinel": true}\n'
    assert sorted(first.written) == sorted(c.filename for c in CONTRACTS)
    snapshot = {p.name: p.read_text() for p in tmp_path.iterdir()}
    second = export.export(tmp_path)
    assert second.written == [] and len(second.unchanged) == len(CONTRACTS)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == snapshot
    text = snapshot[f"EventEnvelope.v{export.ENVELOPE_VERSION}.json"]
    assert text.endswith("}\n") and text == json.dumps(json.loads(text), indent=2, sort_keys=True,
                                                       ensure_ascii=False) + "\n"


def test_export_refuses_to_overwrite_a_version_with_an_incompatible_schema(tmp_path: Path):
    export.export(tmp_path)
    target = tmp_path / "enrollment.SubjectEnrolled.v1.json"
    schema = json.loads(target.read_text())
    schema["properties"]["legacy_field"] = {"type": "string"}  # the model no longer has it
    target.write_text(export.render(schema))
    outcome = export.export(tmp_path)
    assert "enrollment.SubjectEnrolled.v1.json" in outcome.refused
    assert "legacy_field: property removed" in outcome.refused["enrollment.SubjectEnrolled.v1.json"]
    assert json.loads(target.read_text()) == schema  # untouched
    assert export.main(["--out", str(tmp_path), "--check"]) == 1


def test_export_check_mode_writes_nothing(tmp_path: Path):
    assert export.main(["--out", str(tmp_path), "--check"]) == 1
    assert list(tmp_path.iterdir()) == []


def test_published_schemas_are_up_to_date():
    outcome = export.export(SCHEMAS, check=True)
    assert outcome.refused == {} and outcome.stale == []


# --- (c) incompatibilities on synthetic schemas -------------------------------------------------
def obj(properties: dict, required=(), **extra) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), **extra}


BASE = obj({"id": {"type": "string", "pattern": "^S-[0-9]+$", "maxLength": 20},
            "n": {"type": "integer", "minimum": 0, "maximum": 10},
            "x": {"type": "number"},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "kind": {"enum": ["a", "b", "c"], "type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5}},
           required=["id", "n"])


def changed(path: list, value=None, *, delete=False, schema=BASE) -> dict:
    out = json.loads(json.dumps(schema))
    node = out
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


INCOMPATIBLE = {
    "property removed": (changed(["properties", "x"], delete=True), "x: property removed"),
    "property newly required": (changed(["required"], ["id", "n", "x"]), "x: property newly required"),
    "new required property": (changed(["properties", "y"], {"type": "string"}, schema=changed(["required"], ["id", "n", "y"])),
                              "y: property newly required"),
    "type changed": (changed(["properties", "n", "type"], "string"), "n: type changed/narrowed"),
    "number narrowed to integer": (changed(["properties", "x", "type"], "integer"), "x: type changed/narrowed"),
    "null no longer accepted": (changed(["properties", "note"], {"type": "string"}), "note: type changed/narrowed"),
    "enum value removed": (changed(["properties", "kind", "enum"], ["a", "b"]), "kind: enum value removed: 'c'"),
    "enum added": (changed(["properties", "id", "enum"], ["S-1"]), "id: enum/const added"),
    "additionalProperties tightened": (changed(["additionalProperties"], False), "<root>: additionalProperties tightened"),
    "minimum raised": (changed(["properties", "n", "minimum"], 1), "n: minimum raised"),
    "exclusive minimum at the same bound": (changed(["properties", "n", "exclusiveMinimum"], 0), "n: minimum raised"),
    "maximum lowered": (changed(["properties", "n", "maximum"], 9), "n: maximum lowered"),
    "maximum added": (changed(["properties", "x", "maximum"], 100), "x: maximum lowered"),
    "pattern changed": (changed(["properties", "id", "pattern"], "^S-[0-9]{4}$"), "id: pattern changed"),
    "pattern added": (changed(["properties", "note", "anyOf", 0, "pattern"], "^[a-z]+$"), "note: pattern changed"),
    "maxLength lowered": (changed(["properties", "id", "maxLength"], 10), "id: maxLength lowered"),
    "minLength raised": (changed(["properties", "id", "minLength"], 3), "id: minLength raised"),
    "format added": (changed(["properties", "id", "format"], "uuid"), "id: format changed"),
    "items narrowed": (changed(["properties", "tags", "items", "type"], "integer"), "tags[]: type changed/narrowed"),
    "maxItems lowered": (changed(["properties", "tags", "maxItems"], 2), "tags: maxItems lowered"),
    "multipleOf added": (changed(["properties", "x", "multipleOf"], 0.5), "x: multipleOf tightened"),
}

COMPATIBLE = {
    "identical": BASE,
    "optional property added": changed(["properties", "extra"], {"type": "string"}),
    "property no longer required": changed(["required"], ["id"]),
    "integer widened to number": changed(["properties", "n", "type"], "number"),
    "null accepted": changed(["properties", "x"], {"anyOf": [{"type": "number"}, {"type": "null"}]}),
    "enum value added": changed(["properties", "kind", "enum"], ["a", "b", "c", "d"]),
    "enum dropped": changed(["properties", "kind"], {"type": "string"}),
    "minimum lowered": changed(["properties", "n", "minimum"], -5),
    "maximum removed": changed(["properties", "n"], {"type": "integer", "minimum": 0}),
    "maxLength raised": changed(["properties", "id", "maxLength"], 40),
    "pattern unchanged, description changed": changed(["properties", "id", "description"], "subject"),
    "title changed": changed(["title"], "Renamed"),
}


@pytest.mark.parametrize("case", sorted(INCOMPATIBLE))
def test_incompatible_change_is_reported(case):
    new, expected = INCOMPATIBLE[case]
    problems = incompatibilities(BASE, new)
    assert any(p.startswith(expected) for p in problems), f"{case}: expected {expected!r}, got {problems}"


@pytest.mark.parametrize("case", sorted(COMPATIBLE))
def test_compatible_change_is_not_reported(case):
    assert incompatibilities(BASE, COMPATIBLE[case]) == []


def test_additional_properties_false_to_false_with_new_optional_property_is_compatible():
    strict = changed(["additionalProperties"], False)
    assert incompatibilities(strict, changed(["properties", "extra"], {"type": "string"}, schema=strict)) == []
    assert incompatibilities(strict, BASE) == []  # loosened


def test_refs_are_resolved():
    old = {"$defs": {"Kind": {"enum": ["a", "b"], "type": "string"}},
           "type": "object", "properties": {"kind": {"$ref": "#/$defs/Kind"}}}
    new = {"$defs": {"Kind": {"enum": ["a"], "type": "string"}},
           "type": "object", "properties": {"kind": {"anyOf": [{"$ref": "#/$defs/Kind"}, {"type": "null"}]}}}
    assert incompatibilities(old, new) == ["kind: enum value removed: 'b'"]
    same_inline = {"type": "object", "properties": {"kind": {"enum": ["a", "b"], "type": "string"}}}
    assert incompatibilities(old, same_inline) == []


def test_recursive_refs_terminate():
    tree = {"$defs": {"Node": {"type": "object", "properties": {
        "value": {"type": "integer"},
        "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
        "$ref": "#/$defs/Node"}
    narrowed = json.loads(json.dumps(tree))
    narrowed["$defs"]["Node"]["properties"]["value"]["minimum"] = 0
    assert incompatibilities(tree, tree) == []
    assert incompatibilities(tree, narrowed) == ["value: minimum raised: unbounded -> >= 0"]


def test_real_v1_to_v2_is_incompatible():
    v1 = json.loads((SCHEMAS / "assessment.ResponseAssessed.v1.json").read_text())
    v2 = json.loads((SCHEMAS / "assessment.ResponseAssessed.v2.json").read_text())
    problems = incompatibilities(v1, v2)
    assert "mrd_percent: property removed" in problems
    assert "mrd_status: property newly required" in problems


def test_validator_on_synthetic_schema():
    assert validation_errors(BASE, {"id": "S-1", "n": 3, "note": None, "kind": "a", "tags": ["x"]}) == []
    assert validation_errors(BASE, {"id": "S-1", "n": 3.0}) == []  # 3.0 is an integer in JSON Schema
    assert validation_errors(BASE, {"id": "X", "n": 11, "kind": "z", "tags": [1]}) != []
    assert validation_errors(BASE, {"n": 1}) == ["<root>: missing required property 'id'"]
    assert validation_errors(BASE, {"id": "S-1", "n": True})  # a boolean is not an integer


# --- (d) v1 ResponseAssessed upcasts to a valid v2 ----------------------------------------------
V1_SAMPLES = [
    {"subject_id": "S-0123456789AB", "assessed_on": "2025-03-01", "study_day": 28,
     "marrow_blasts_percent": 2.5, "mrd_percent": 0.004},
    {"subject_id": "S-0123456789AB", "assessed_on": "2025-03-01", "study_day": 28,
     "marrow_blasts_percent": 40.0, "mrd_percent": 12.0},
    {"subject_id": "S-FFFFFFFFFFFF", "assessed_on": "2024-12-31", "study_day": 27,
     "marrow_blasts_percent": 0, "mrd_percent": None},
    {"subject_id": "S-000000000000", "assessed_on": "2025-01-15", "study_day": 90, "marrow_blasts_percent": 5},
]


def test_v1_schema_is_published_and_older_than_the_model():
    assert ResponseAssessed.schema_version == 2
    assert (SCHEMAS / "assessment.ResponseAssessed.v1.json").is_file()


@pytest.mark.parametrize("payload", V1_SAMPLES)
def test_v1_payload_upcasts_to_a_valid_v2(payload):
    v1 = json.loads((SCHEMAS / "assessment.ResponseAssessed.v1.json").read_text())
    v2 = json.loads((SCHEMAS / "assessment.ResponseAssessed.v2.json").read_text())
    assert validation_errors(v1, payload) == []
    upcast_payload = upcast_response_assessed_v1_to_v2(dict(payload))
    event = ResponseAssessed.model_validate(upcast_payload)
    assert event.marrow_blasts_percent == payload["marrow_blasts_percent"]
    assert event.flow_mrd_percent == payload.get("mrd_percent")
    assert validation_errors(v2, upcast_payload) == []
    assert upcast("assessment.ResponseAssessed", 1, dict(payload)) == upcast_payload


@pytest.mark.parametrize("bad", [
    {"subject_id": "S-0123456789AB", "assessed_on": "2025-03-01", "study_day": 28},  # no blasts
    {"subject_id": "Jane Doe", "assessed_on": "2025-03-01", "study_day": 28, "marrow_blasts_percent": 1},
    {"subject_id": "S-0123456789AB", "assessed_on": "2025-03-01", "study_day": 28,
     "marrow_blasts_percent": 1, "mrd_percent": 101},
    {"subject_id": "S-0123456789AB", "assessed_on": "2025-03-01", "study_day": 28,
     "marrow_blasts_percent": 1, "response_category": "complete_remission"},  # a v2 field
])
def test_v1_schema_rejects_what_v1_never_carried(bad):
    v1 = json.loads((SCHEMAS / "assessment.ResponseAssessed.v1.json").read_text())
    assert validation_errors(v1, bad) != []


def test_current_models_accept_what_their_published_schema_accepts():
    """Round trip: a payload the model emits validates against the model's published file."""
    event = ResponseAssessed.model_validate(upcast_response_assessed_v1_to_v2(dict(V1_SAMPLES[0])))
    schema = json.loads((SCHEMAS / "assessment.ResponseAssessed.v2.json").read_text())
    assert validation_errors(schema, event.model_dump(mode="json")) == []
    with pytest.raises(ValidationError):
        ResponseAssessed.model_validate({**event.model_dump(mode="json"), "mrd_percent": 1.0})


# --- (e) no direct identifiers on the wire ---------------------------------------------------------
IDENTIFIER_WORDS = ("name", "surname", "birth", "dob", "hospital_record", "record_number", "mrn", "nhs", "ssn",
                    "social_security", "passport", "address", "postcode", "zipcode", "phone", "mobile", "email",
                    "initials", "insurance_number")
# Field names that contain an identifier word but name no person: a centre's name is public.
# A signature's printed name is the signing staff member's (21 CFR 11.50(a)(1)), no patient's.
NOT_PERSONAL = {("enrollment.CentreRegistered", "name"), ("RegisterCentre", "name"),
                ("common.RecordSigned", "printed_name"),
                # the QP's and the treating physician's, copied from their signatures (issue 9 item 4)
                ("manufacturing.ReleaseCertified", "printed_name"),
                ("manufacturing.ExceptionalReleaseAccepted", "printed_name")}


def suspicious_fields(label: str, model: type[BaseModel]) -> list[str]:
    out = []
    for field in model.model_fields:
        lowered = field.lower()
        if (label, field) in NOT_PERSONAL:
            continue
        if any(word in lowered for word in IDENTIFIER_WORDS):
            out.append(f"{label}.{field}")
    return out


WIRE_MODELS = ([(t, cls) for t, cls in EVENT_TYPES.items()]
               + [(t, cls) for t, cls in COMMAND_TYPES.items() if cls is not RegisterPatient]
               + [("EventEnvelope", EventEnvelope), ("CommandEnvelope", CommandEnvelope)])


@pytest.mark.parametrize("label, model", WIRE_MODELS, ids=[label for label, _ in WIRE_MODELS])
def test_no_direct_identifier_fields(label, model):
    assert suspicious_fields(label, model) == []


def test_identifier_detector_catches_register_patient():
    found = set(suspicious_fields("RegisterPatient", RegisterPatient))
    assert {"RegisterPatient.family_name", "RegisterPatient.given_name", "RegisterPatient.date_of_birth",
            "RegisterPatient.hospital_record_number"} <= found


def test_identifier_detector_on_a_synthetic_model():
    class Leaky(BaseModel):
        subject_id: str
        patient_email: str
        mrn: str
        dob: str

    assert suspicious_fields("Leaky", Leaky) == ["Leaky.patient_email", "Leaky.mrn", "Leaky.dob"]


def test_register_patient_never_travels_on_kafka():
    # Registration carries identifiers; erasure of them is accepted at the same HTTP edge.
    # Signing needs the signer's password beside the command, which never travels on a topic.
    # A screening needs the date of birth, which only enrollment's HTTP edge may read.
    http_only = (RegisterPatient, EraseIdentity, SignRecord, ScreenCandidate)
    assert all(cls.topic is None for cls in http_only)
    for command_type, cls in COMMAND_TYPES.items():
        if cls not in http_only:
            assert cls.topic in COMMAND_TOPICS, f"{command_type} has no command topic"


def test_compat_module_exports():
    assert callable(compat.incompatibilities) and callable(compat.validation_errors)


def _tagged_union(*variants: dict) -> dict:
    return obj({"observation": {"oneOf": list(variants), "discriminator": {"propertyName": "kind"}}}, ["observation"])


def test_a_discriminated_union_is_compared_alternative_by_alternative_by_its_tag():
    """Adding an alternative to a discriminated union (ObservationRecorded's `observation`, issue
    11) is compatible wherever it is placed; an alternative losing a property is still reported,
    against the alternative with its own tag, not the first object."""
    vitals = obj({"kind": {"const": "vital_signs"}, "temperature_c": {"type": "number"}}, ["kind", "temperature_c"])
    death = obj({"kind": {"const": "death"}, "cause": {"type": "string"}}, ["kind", "cause"])
    mrd = obj({"kind": {"const": "molecular_mrd"}, "detected": {"type": "boolean"}}, ["kind", "detected"])
    old = _tagged_union(vitals, death)
    assert incompatibilities(old, old) == []
    assert incompatibilities(old, _tagged_union(vitals, death, mrd)) == []
    assert incompatibilities(old, _tagged_union(mrd, death, vitals)) == []
    narrowed = obj({"kind": {"const": "death"}}, ["kind"])
    assert incompatibilities(old, _tagged_union(vitals, narrowed, mrd)) == ["observation.cause: property removed"]
