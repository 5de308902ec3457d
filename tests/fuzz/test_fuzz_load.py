"""The load format, fuzzed (issue 12 item 6; docs/load-format.md).

- Lines: FUZZ_EXAMPLES x 10 generated lines, each read by the loader (`Loader.validate`,
  what `celltrail load` does to every line before sending it): valid lines of several
  commands with one thing broken (a wrong type, `subject_ref` or `command` not a string, a
  control character, a huge or non-finite number, a field missing or unknown), lines that
  are not JSON or not objects, integers too long for Python's JSON reader, deep nesting.
  Each is either a command or INVALID with a reason; nothing raises.
- Files: FUZZ_EXAMPLES x 3 such lines, mixed with valid ones, loaded into the running system
  (`Loader.load`, as `celltrail load`); one result per line, in order, each accepted,
  refused, a duplicate or invalid with its reason, never a timeout; the stores change by
  exactly the events the accepted and refused lines report. One generated file also goes
  through the `celltrail load` command itself, and files that are not UTF-8 are refused
  whole with one line, before anything is sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import topology
from contracts.registry import COMMAND_TYPES
from infra.tooling.loader import LineResult, LoadFileError, Loader, read_lines
from tests.conftest import in_thread
from tests.fuzz.conftest import (CENTRE, PROGRAMME, TALLY, Fuzzed, assert_alive, changed, counts, examples,
                                 fuzz_settings, wait_caught_up)
from tests.fuzz.test_fuzz_http import HUGE, _any_json, _text_with_control

pytestmark = pytest.mark.e2e


def templates(subject: str) -> list[dict[str, Any]]:
    """Valid lines (against the seeded system: the patient registered and enrolled at CENTRE)."""
    return [
        {"command": "RegisterPatient", "ref": "q", "centre_id": CENTRE, "hospital_record_number": "FZ-9",
         "family_name": "Verdi", "given_name": "Carla", "date_of_birth": "1975-03-04", "registered_on": "2025-02-01"},
        {"command": "EnrollSubject", "subject_ref": "q", "programme_id": PROGRAMME, "centre_id": CENTRE,
         "enrolled_on": "2025-02-02"},
        {"command": "RegisterCentre", "centre_id": "FZ-02", "name": "Second fuzz centre", "country": "IT"},
        {"command": "RecordResponseAssessment", "subject_id": subject, "assessed_on": "2025-03-01",
         "marrow_blasts_percent": 1.0, "circulating_blasts": False, "extramedullary_disease": False,
         "anc_per_ul": 1500, "platelets_per_ul": 150000, "flow_mrd_percent": 0.001, "molecular_mrd_percent": 0.001},
        {"command": "ScreenCandidate", "subject_id": subject, "programme_id": PROGRAMME, "centre_id": CENTRE,
         "screened_on": "2025-01-03", "facts": {}},
    ]


def broken_line(subject: str) -> st.SearchStrategy[str]:
    """A line of the load format, most likely broken."""
    @st.composite
    def one(draw) -> str:
        line = dict(draw(st.sampled_from(templates(subject))))
        how = draw(st.sampled_from(["wrong type", "ref not a string", "command not a string", "unknown command",
                                    "control", "huge", "non-finite", "missing", "unknown field", "not json",
                                    "not an object", "long integer", "nested", "principal", "as is"]))
        key = draw(st.sampled_from(sorted(k for k in line if k != "command")))
        if how == "wrong type":
            line[key] = draw(st.one_of(st.integers(), st.booleans(), st.none(), st.lists(st.integers(), max_size=3),
                                       st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)))
        elif how == "ref not a string":
            line[draw(st.sampled_from(["subject_ref", "ref", "donor_ref"]))] = draw(st.one_of(
                st.integers(), st.lists(st.text(max_size=3), max_size=2), st.dictionaries(st.text(max_size=3),
                                                                                          st.integers(), max_size=2),
                st.booleans(), st.just(""), _text_with_control()))
        elif how == "command not a string":
            line["command"] = draw(st.one_of(st.integers(), st.lists(st.text(max_size=5), max_size=2),
                                             st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                                             st.none(), st.floats()))
        elif how == "unknown command":
            line["command"] = draw(st.one_of(st.text(max_size=30), _text_with_control(),
                                             st.sampled_from(sorted(COMMAND_TYPES))))
        elif how == "control":
            line[key] = draw(_text_with_control())
        elif how == "huge":
            line[key] = draw(HUGE)
        elif how == "non-finite":
            line[key] = draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
        elif how == "missing":
            del line[key]
        elif how == "unknown field":
            line[draw(st.one_of(st.text(min_size=1, max_size=20), _text_with_control()))] = draw(_any_json())
        elif how == "not json":
            return draw(st.text(max_size=120)).replace("\n", " ").replace("\r", " ")
        elif how == "not an object":
            return json.dumps(draw(st.one_of(st.lists(_any_json(), max_size=3), st.integers(), st.text(max_size=20))))
        elif how == "long integer":
            return '{"command": "RegisterCentre", "centre_id": ' + "9" * draw(st.integers(4301, 20_000)) + "}"
        elif how == "nested":
            return '{"command": "RegisterCentre", "name": ' + "[" * 5_000 + "]" * 5_000 + "}"
        elif how == "principal":
            line["principal"] = draw(st.one_of(_any_json(), st.text(max_size=70)))
        # as is: a valid line (it may be accepted)
        # ensure_ascii: a lone surrogate travels as its escape, as a file holds it
        return json.dumps(line, ensure_ascii=True, allow_nan=True)

    return one()


def test_every_generated_line_is_a_command_or_invalid_with_a_reason(fuzzed: Fuzzed) -> None:
    loader = Loader("127.0.0.1:1", "http://127.0.0.1:1", "http://127.0.0.1:1", None)  # nothing is sent
    loader.refs["q"] = fuzzed.subject_id

    @fuzz_settings(examples() * 10)
    @given(text=broken_line(fuzzed.subject_id))
    def read(text: str) -> None:
        loader.ref_lines.clear()
        checked = loader.validate(1, text)
        if isinstance(checked, LineResult):
            TALLY.count("load parse", "invalid")
            assert checked.status == "invalid" and checked.detail.strip(), checked
            assert "Traceback" not in checked.detail
        else:
            parsed, command = checked
            TALLY.count("load parse", "command")
            assert parsed.command_type == command.command_type

    read()


@fuzz_settings(examples())
@given(data=st.binary(max_size=300), bad=st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))
def test_a_file_that_is_not_utf8_is_refused_whole_with_one_line(tmp_path_factory, data: bytes, bad: bytes) -> None:
    path = tmp_path_factory.mktemp("notutf8") / "f.jsonl"
    path.write_bytes(b'{"command": "RegisterCentre"}\n' + data + bad + b"\n")
    with pytest.raises(LoadFileError, match=r"is not UTF-8 text \(byte 0x[0-9a-f]{2} on line \d+\)"):
        read_lines(path)
    TALLY.count("load file", "refused: not UTF-8")


def _store_of(command_type: str) -> str:
    topic = COMMAND_TYPES[command_type].topic
    return next((s for s in topology.SERVICES if topology.commands_topic(s) == topic), "enrollment")


def expected_effects(results: list[LineResult]) -> Counter:
    """What the lines report they caused, by (store, event type): a topic command's events
    (its own service's, as the loader saw them), or its refusal (CommandRejected); a patient
    registered (created, not found again); a screening recorded. Nothing for a line invalid."""
    out: Counter = Counter()
    for r in results:
        if r.status == "accepted":
            if r.command_type == "RegisterPatient":
                if "(already registered)" not in r.detail:
                    out[("enrollment", "enrollment.PatientRegistered")] += 1
            elif r.command_type == "ScreenCandidate":
                out[("enrollment", "enrollment.CandidateScreened")] += 1
            else:
                for event_type in r.events:
                    out[(event_type.split(".")[0], event_type)] += 1
        elif r.status == "refused" and r.command_type not in ("RegisterPatient", "ScreenCandidate"):
            out[(_store_of(r.command_type), "common.CommandRejected")] += 1
    return out


def _lines(fz: Fuzzed, n: int) -> list[str]:
    @fuzz_settings(n)
    @given(text=broken_line(fz.subject_id))
    def gather(text: str) -> None:
        lines.append(text)

    lines: list[str] = []
    gather()
    return lines


def test_generated_files_load_line_by_line_and_change_only_what_they_report(fuzzed: Fuzzed) -> None:
    fz = fuzzed
    wait_caught_up(fz)
    before = counts(fz)
    base = [json.dumps(t) for t in templates(fz.subject_id)]
    lines = base[:1] + _lines(fz, examples() * 3) + base[1:]
    info = fz.system.info
    loader = Loader(info.kafka_bootstrap_servers, info.urls["enrollment"], info.urls["projection"],
                    fz.system.tokens(), timeout=60, service_urls=info.urls)
    results = in_thread(asyncio.run, loader.load(lines))
    wanted = [n for n, text in enumerate(lines, start=1) if text.strip() and not text.lstrip().startswith("#")]
    assert [r.line for r in results] == wanted
    for r in results:
        TALLY.count("load submitted", r.status)
        assert r.status in ("accepted", "refused", "duplicate", "invalid"), r
        assert r.detail.strip(), r
    wait_caught_up(fz)
    assert_alive(fz)
    got = changed(before, counts(fz))
    expected = {k: v for k, v in expected_effects(results).items() if v}
    assert got == expected, (f"the stores changed by {got}, the lines report {expected}:\n"
                             + "\n".join(str(r) for r in results if r.status in ("accepted", "refused")))


def test_the_load_command_reports_each_generated_line(fuzzed: Fuzzed, tmp_path: Path) -> None:
    """`celltrail load` itself: exit status 0 or 1, a line of output per line of the file,
    no traceback; a file that is not UTF-8 is refused whole (status 2) with one line."""
    fz = fuzzed
    lines = _lines(fz, examples() * 2)
    path = tmp_path / "fuzz.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "CELLTRAIL_HOME": str(fz.system.home),
           "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
    done = subprocess.run([sys.executable, "-m", "infra.tooling.cli", "load", str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    reported = [ln.strip() for ln in done.stdout.splitlines() if ln.strip().startswith("line ")]
    counted = [text for text in read_lines(path) if text.strip() and not text.lstrip().startswith("#")]
    assert len(reported) == len(counted), done.stdout
    TALLY.sent["load cli"] += len(reported)
    for ln in reported:
        TALLY.outcomes["load cli"][ln.split(": ")[1] if ": " in ln else "?"] += 1

    path.write_bytes(b'{"command": "RegisterCentre", "centre_id": "FZ-03", "name": "x", "country": "IT"}\n\xff\xfe\n')
    refused = subprocess.run([sys.executable, "-m", "infra.tooling.cli", "load", str(path)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "is not UTF-8 text (byte 0xff on line 2)" in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr
    TALLY.count("load cli", "refused whole: not UTF-8")
    assert_alive(fz)
