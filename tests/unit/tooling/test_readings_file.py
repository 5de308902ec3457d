"""A temperature logger's file (infra/tooling/readings.py): read as readings, or refused before
anything is sent, naming the line and what is wrong with it."""

from __future__ import annotations

import re

import pytest

from infra.tooling.readings import ReadingsFileError, parse, read


def test_a_loggers_file_with_its_header_comments_and_blank_lines():
    text = "time,celsius\n# dry shipper DS-12\n2025-03-14T08:00:00+01:00,-190.5\n\n2025-03-14T08:10:00Z,-188\n"
    assert parse(text) == [{"at": "2025-03-14T08:00:00+01:00", "celsius": -190.5},
                           {"at": "2025-03-14T08:10:00+00:00", "celsius": -188.0}]


@pytest.mark.parametrize("text, message", [
    ("2025-03-14T08:00:00+01:00;-190\n", "line 1: expected `time,celsius`, found 1 field(s)"),
    ("yesterday,-190\n", "line 1: 'yesterday' is not an ISO 8601 time"),
    ("2025-03-14T08:00:00,-190\n", "line 1: '2025-03-14T08:00:00' has no UTC offset"),
    ("2025-03-14T08:00:00Z,cold\n", "line 1: 'cold' is not a temperature in degrees Celsius"),
    ("2025-03-14T08:00:00Z,-190\n2025-03-14T07:59:00Z,-190\n", "line 2: 2025-03-14T07:59:00+00:00 does not follow"),
    ("time,celsius\n", "holds no readings"),
])
def test_a_bad_line_is_named(text, message):
    with pytest.raises(ReadingsFileError, match=re.escape(message)):
        parse(text, "log.csv")


def test_a_file_that_is_not_text(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"time,celsius\n\xff\xfe")
    with pytest.raises(ReadingsFileError, match="is not UTF-8 text"):
        read(path)
