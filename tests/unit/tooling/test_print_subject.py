"""`celltrail status` shows each signature with the record it signs (21 CFR 11.50(b))."""

from __future__ import annotations

from infra.tooling.cli import print_subject


def test_a_signed_entry_is_printed_with_the_signers_printed_name_time_and_meaning(capsys) -> None:
    print_subject({"subject_id": "S-0123456789AB", "programme_id": "P-1", "centre_id": "CTR-BG", "phase": "released",
                   "timeline": [{"at": "2025-03-01T09:00:00+00:00", "summary": "product lot LOT-1 released",
                                 "signatures": [{"printed_name": "Giulia Bianchi", "meaning": "approval",
                                                 "signed_at": "2025-03-01T10:00:00+00:00"}]}]})

    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("product lot LOT-1 released")
    assert lines[2].strip() == "signed: Giulia Bianchi, 2025-03-01T10:00:00+00:00, approval"
