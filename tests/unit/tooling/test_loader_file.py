"""`celltrail load`: what is wrong with a file or a line is said in one line, per line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.tooling.loader import LineResult, LoadFileError, Loader, read_lines


def _register(ref: str, hrn: str) -> str:
    return json.dumps({"command": "RegisterPatient", "ref": ref, "centre_id": "CTR-BG", "given_name": "A",
                       "family_name": "B", "date_of_birth": "1980-01-01", "hospital_record_number": hrn,
                       "registered_on": "2025-01-02"})


@pytest.fixture
def loader() -> Loader:
    return Loader("127.0.0.1:1", "http://127.0.0.1:1", "http://127.0.0.1:1", None)  # never contacted here


class TestReadingALoadFile:
    def test_a_directory_is_named_as_such(self, tmp_path: Path) -> None:
        with pytest.raises(LoadFileError, match="is a directory, not a file"):
            read_lines(tmp_path)

    def test_a_file_that_is_not_utf8_names_the_byte_and_line(self, tmp_path: Path) -> None:
        f = tmp_path / "latin1.jsonl"
        f.write_bytes(b'{"command": "EnrollSubject"}\n{"x": "caf\xe9"}\n')
        with pytest.raises(LoadFileError) as info:
            read_lines(f)
        assert "is not UTF-8 text (byte 0xe9 on line 2)" in str(info.value)
        assert "\n" not in str(info.value)

    def test_a_missing_file_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(LoadFileError, match="does not exist"):
            read_lines(tmp_path / "nope.jsonl")

    def test_a_utf8_file_gives_its_lines(self, tmp_path: Path) -> None:
        f = tmp_path / "ok.jsonl"
        f.write_text('{"a": "é"}\n\n# comment\n', encoding="utf-8")
        assert read_lines(f) == ['{"a": "é"}', "", "# comment"]


class TestValidatingLines:
    def test_a_ref_used_twice_is_an_invalid_line_naming_the_first_use(self, loader: Loader) -> None:
        assert not isinstance(loader.validate(1, _register("p1", "HRN-1")), LineResult)
        second = loader.validate(2, _register("p1", "HRN-2"))
        assert isinstance(second, LineResult)
        assert second.status == "invalid"
        assert "ref 'p1' is already used by line 1" in second.detail

    def test_distinct_refs_are_valid(self, loader: Loader) -> None:
        assert not isinstance(loader.validate(1, _register("p1", "HRN-1")), LineResult)
        assert not isinstance(loader.validate(2, _register("p2", "HRN-2")), LineResult)

    @pytest.mark.parametrize("bad", [7, ["p1"], {"x": 1}, "", "  "])
    def test_a_subject_ref_that_is_not_a_string_is_an_invalid_line(self, loader: Loader, bad: object) -> None:
        line = json.dumps({"command": "EnrollSubject", "subject_ref": bad, "programme_id": "P"})
        result = loader.validate(3, line)
        assert isinstance(result, LineResult) and result.status == "invalid"
        assert '"subject_ref" must be a non-empty string' in result.detail

    def test_an_unknown_subject_ref_is_an_invalid_line(self, loader: Loader) -> None:
        line = json.dumps({"command": "EnrollSubject", "subject_ref": "ghost", "programme_id": "P"})
        result = loader.validate(1, line)
        assert isinstance(result, LineResult) and "was not registered by an earlier line" in result.detail

    def test_a_donor_ref_names_a_person_registered_by_an_earlier_line(self, loader: Loader) -> None:
        loader.refs.update({"p1": "S-0123456789AB", "d1": "S-D0D0D0D0D0D0"})
        line = json.dumps({"command": "RecordApheresisCollection", "subject_ref": "p1", "donor_ref": "d1",
                           "coi_id": "W0001 25 000001 1", "centre_id": "CTR-A", "collected_at": "2025-03-10T09:00:00Z"})
        _, command = loader.validate(4, line)
        assert (command.subject_id, command.donor_id) == ("S-0123456789AB", "S-D0D0D0D0D0D0")
        ghost = loader.validate(5, line.replace('"d1"', '"d9"'))
        assert isinstance(ghost, LineResult) and "donor_ref 'd9' was not registered by an earlier line" in ghost.detail


class TestScreeningLines:
    def test_a_screening_is_loaded_from_files_naming_its_subject_by_ref(self, loader: Loader) -> None:
        loader.refs["p1"] = "S-0123456789AB"
        line = json.dumps({"command": "ScreenCandidate", "subject_ref": "p1", "programme_id": "NK-PHALL-P1",
                           "centre_id": "CTR-A", "screened_on": "2025-03-01",
                           "facts": {"diagnosis": "B-cell precursor ALL", "ph_status": "Ph+"}})
        _, command = loader.validate(2, line)
        assert (command.command_type, command.subject_id, command.facts["ph_status"]) == (
            "ScreenCandidate", "S-0123456789AB", "Ph+")

    def test_a_signature_still_is_not(self, loader: Loader) -> None:
        result = loader.validate(1, json.dumps({"command": "SignRecord"}))
        assert isinstance(result, LineResult) and "is not loaded from files" in result.detail


class TestChainOfIdentityIds:
    """Issue 9 item 1: a mistyped COI is refused with a clear message, nothing sent for it."""

    def line(self, coi: str) -> str:
        return json.dumps({"command": "RecordApheresisCollection", "subject_id": "S-0123456789AB",
                           "coi_id": coi, "centre_id": "IT-BG-01", "collected_at": "2025-01-24T09:30:00+01:00"})

    def test_a_coi_as_on_the_label_is_taken_compact(self, loader: Loader) -> None:
        _, command = loader.validate(1, self.line("G1234 98 654321 H"))
        assert command.coi_id == "G123498654321H"

    def test_a_mistyped_coi_is_an_invalid_line_saying_so(self, loader: Loader) -> None:
        result = loader.validate(1, self.line("G123498654312H"))
        assert isinstance(result, LineResult) and result.status == "invalid"
        assert "coi_id" in result.detail and "check character 'H' does not match G123498654312" in result.detail
