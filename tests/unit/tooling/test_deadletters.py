"""`celltrail deadletters`: reading dead letters and replay markers, the lines and JSON shown,
the ids and times accepted, and what may be sent back (infra/tooling/deadletters.py)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from contracts import topics
from infra.tooling import cli, deadletters
from infra.tooling.deadletters import DeadLetterError

T0 = datetime(2025, 6, 1, 10, 0, tzinfo=timezone.utc)
COMMAND = json.dumps({"command_id": "5b0b6a8e-0b1f-4c8e-9d43-2f1c3c9e0a11", "command_type": "RegisterCentre",
                      "actor": "celltrail-cli", "payload": {"centre_id": "IT-BG-01"}}).encode()


@dataclass
class Rec:
    offset: int
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    key: bytes | None = b"IT-BG-01"
    timestamp: int = int(T0.timestamp() * 1000)
    topic: str = topics.DEAD_LETTER
    partition: int = 0


def dead(offset: int, value: bytes | None = COMMAND, *, reason: str = "handler failed 5 times: RuntimeError: bug",
         source: str | None = None, original: list | None = None, at: datetime = T0) -> Rec:
    """A dead letter at `offset` of the dead-letter topic; by default of the record at offset
    41 + `offset` of partition 2 of enrollment's commands."""
    source = source or f"{topics.ENROLLMENT_COMMANDS}/2/{41 + offset}"
    headers = list(original if original is not None else [(topics.HEADER_MESSAGE_TYPE, b"RegisterCentre")])
    headers += [(topics.HEADER_DLQ_REASON, reason.encode()), (topics.HEADER_DLQ_SOURCE, source.encode()),
                (topics.HEADER_DLQ_CONSUMER, b"enrollment")]
    return Rec(offset, value, headers, timestamp=int(at.timestamp() * 1000))


def marker(offset: int, of: str, by: str = "admin.rossi", at: str = "2025-06-02T08:00:00.000Z") -> Rec:
    body = {"replay_of": of, "replayed_by": by, "replayed_at": at, "sent_to": f"{topics.ENROLLMENT_COMMANDS}/2/90"}
    return Rec(offset, json.dumps(body).encode(), [(topics.HEADER_DLQ_REPLAYED, of.encode())], key=of.encode())


class TestIds:
    @pytest.mark.parametrize(("text", "expected"), [("0:12", "0:12"), (" 00:7 ", "0:7"), ("3:0", "3:0")])
    def test_an_id_is_partition_colon_offset(self, text: str, expected: str) -> None:
        assert deadletters.parse_id(text) == expected

    @pytest.mark.parametrize("text", ["12", "0-12", "0:", ":3", "a:b", "0:1:2", "-1:3"])
    def test_anything_else_is_refused_saying_what_an_id_looks_like(self, text: str) -> None:
        with pytest.raises(DeadLetterError) as info:
            deadletters.parse_id(text)
        assert info.value.status == 2 and "<partition>:<offset>" in str(info.value) and repr(text) in str(info.value)


class TestSince:
    @pytest.mark.parametrize(("text", "expected"), [
        ("2025-06-01", T0.replace(hour=0)),
        ("2025-06-01T10:00:00Z", T0),
        ("2025-06-01T12:00:00+02:00", T0),
    ])
    def test_an_instant_with_its_offset_or_a_date(self, text: str, expected: datetime) -> None:
        assert deadletters.parse_since(text) == expected

    @pytest.mark.parametrize("text", ["2025-06-01T10:00:00", "yesterday", "2025-13-01"])
    def test_a_time_without_an_offset_or_not_a_time_is_refused_naming_the_form(self, text: str) -> None:
        with pytest.raises(DeadLetterError) as info:
            deadletters.parse_since(text)
        assert "ISO 8601 with an offset" in str(info.value) and "YYYY-MM-DD" in str(info.value)
        assert repr(text) in str(info.value)


class TestParsing:
    def test_a_dead_letter_names_its_source_consumer_reason_time_and_type(self) -> None:
        [d] = deadletters.parse([dead(3)])
        assert d.id == "0:3" and d.dead_lettered_at == T0
        assert d.source == deadletters.Source(topics.ENROLLMENT_COMMANDS, 2, 44)
        assert (d.consumer, d.reason) == ("enrollment", "handler failed 5 times: RuntimeError: bug")
        assert d.message_type == "RegisterCentre" and d.message_id == "5b0b6a8e-0b1f-4c8e-9d43-2f1c3c9e0a11"
        assert not d.replayed and d.replay_of is None

    def test_the_type_is_read_from_the_envelope_when_no_header_says_it(self) -> None:
        [d] = deadletters.parse([dead(0, original=[])])
        assert d.message_type == "RegisterCentre"

    @pytest.mark.parametrize("value", [b"\xff\xfe not json", b"[1, 2]", b'{"half": ', None])
    def test_an_undecodable_record_has_no_type(self, value: bytes | None) -> None:
        [d] = deadletters.parse([dead(0, value, original=[], reason="invalid command: ...")])
        assert d.message_type is None and d.message_id is None
        assert "(undecodable)" in deadletters.lines([d])[1]

    def test_a_replay_marker_is_no_dead_letter_but_marks_the_one_it_names(self) -> None:
        letters = deadletters.parse([dead(0), dead(1), marker(2, "0:1"), marker(3, "0:1", by="admin.verdi")])
        assert [d.id for d in letters] == ["0:0", "0:1"]
        assert not letters[0].replayed
        assert [(r.replayed_by, r.marker) for r in letters[1].replays] == [("admin.rossi", "0:2"),
                                                                            ("admin.verdi", "0:3")]

    def test_a_marker_naming_no_dead_letter_is_passed_over(self) -> None:
        assert [d.replayed for d in deadletters.parse([marker(0, "0:99"), dead(1)])] == [False]

    def test_sending_back_keeps_the_original_headers_only(self) -> None:
        original = [(topics.HEADER_MESSAGE_ID, b"id"), ("celltrail-signature", b"sig"),
                    (topics.HEADER_REPLAY_OF, b"0:0"), (topics.HEADER_REPLAYED_BY, b"a"),
                    (topics.HEADER_REPLAYED_AT, b"t")]
        [d] = deadletters.parse([dead(5, original=original)])
        assert d.original_headers() == [(topics.HEADER_MESSAGE_ID, b"id"), ("celltrail-signature", b"sig")]
        assert d.replay_of == "0:0"  # it was itself a replay, dead-lettered again

    def test_the_same_record_dead_lettered_twice_by_its_consumer_is_a_duplicate_sharing_its_replays(self) -> None:
        same = f"{topics.ENROLLMENT_COMMANDS}/2/7"
        letters = deadletters.parse([dead(0, source=same), dead(1, source=same), dead(2), marker(3, "0:1")])
        assert [d.duplicate_of for d in letters] == [None, "0:0", None]
        assert [d.replayed for d in letters] == [True, True, False]  # the marker names the duplicate
        assert "(duplicate of 0:0)" in deadletters.lines(letters)[2]
        assert [d.id for d in deadletters.chosen(deadletters.parse([dead(0, source=same), dead(1, source=same)]), [],
                                                 all_=True, source=None)] == ["0:0"]

    def test_an_unreadable_source_is_unknown(self) -> None:
        [d] = deadletters.parse([dead(0, source="somewhere")])
        assert d.source is None


class TestShown:
    def test_one_line_per_dead_letter_under_a_heading_and_a_count(self) -> None:
        letters = deadletters.parse([dead(0), dead(1, b"\x00", reason="invalid command:\n  bad"), marker(2, "0:0")])
        out = deadletters.lines(letters)
        assert len(out) == 4
        assert out[0].split() == ["ID", "DEAD-LETTERED", "(UTC)", "SOURCE", "CONSUMER", "TYPE", "REPLAYED", "REASON"]
        assert out[1].startswith("0:0  2025-06-01T10:00:00.000Z  celltrail.enrollment.commands.v1/2/41  enrollment")
        assert "RegisterCentre" in out[1] and "replayed 2025-06-02T08:00:00.000Z by admin.rossi" in out[1]
        assert out[1].endswith("handler failed 5 times: RuntimeError: bug")
        assert "not replayed" in out[2] and out[2].endswith("invalid command: bad")
        assert out[3] == "2 dead letters, 1 replayed"
        # columns line up
        assert len({line.index("celltrail.enrollment") for line in out[1:3]}) == 1

    def test_a_long_reason_is_cut_on_the_line_but_whole_in_json(self) -> None:
        [d] = deadletters.parse([dead(0, reason="x" * 4000)])
        assert deadletters.lines([d])[1].endswith("x" * (deadletters.REASON_SHOWN - 3) + "...")
        assert d.to_json()["reason"] == "x" * 4000

    def test_none_is_said(self) -> None:
        assert deadletters.lines([]) == [f"no dead letters on {topics.DEAD_LETTER}"]

    def test_the_json_holds_the_same(self) -> None:
        [d] = deadletters.parse([dead(0), marker(1, "0:0")])
        data = json.loads(json.dumps(d.to_json()))
        assert data["id"] == "0:0" and data["dead_lettered_at"] == "2025-06-01T10:00:00.000Z"
        assert data["source"] == {"topic": topics.ENROLLMENT_COMMANDS, "partition": 2, "offset": 41}
        assert data["consumer"] == "enrollment" and data["message_type"] == "RegisterCentre"
        assert data["replayed"] is True and data["replays"][0]["replayed_by"] == "admin.rossi"
        assert data["replays"][0]["marker"] == "0:1" and data["value_bytes"] == len(COMMAND)


class TestChoosing:
    LETTERS = [dead(0), dead(1, source=f"{topics.INFUSION_EVENTS}/0/3", at=T0 + timedelta(hours=2)),
               dead(2), marker(3, "0:2")]

    def test_by_source_and_time(self) -> None:
        letters = deadletters.parse(self.LETTERS)
        assert [d.id for d in deadletters.select(letters, source=topics.INFUSION_EVENTS)] == ["0:1"]
        assert [d.id for d in deadletters.select(letters, since=T0 + timedelta(hours=1))] == ["0:1"]
        assert len(deadletters.select(letters)) == 3

    def test_ids_choose_their_dead_letters_once_each(self) -> None:
        letters = deadletters.parse(self.LETTERS)
        assert [d.id for d in deadletters.chosen(letters, ["0:2", "0:0", "00:2"], all_=False, source=None)] == [
            "0:2", "0:0"]

    def test_an_unknown_id_chooses_nothing_and_is_named(self) -> None:
        letters = deadletters.parse(self.LETTERS)
        with pytest.raises(DeadLetterError) as info:
            deadletters.chosen(letters, ["0:0", "0:7", "0:3"], all_=False, source=None)
        said = str(info.value)
        assert "no dead letter 0:7, 0:3 (a replay marker, not a dead letter)" in said
        assert "it holds 0:0, 0:1, 0:2" in said and "nothing was replayed" in said

    def test_all_is_every_one_not_yet_replayed_of_the_source(self) -> None:
        letters = deadletters.parse(self.LETTERS)
        assert [d.id for d in deadletters.chosen(letters, [], all_=True, source=None)] == ["0:0", "0:1"]
        assert [d.id for d in deadletters.chosen(letters, [], all_=True, source=topics.ENROLLMENT_COMMANDS)] == ["0:0"]


def jwt(expires: datetime) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'EdDSA'})}.{part({'sub': 'dr.rossi', 'exp': int(expires.timestamp())})}.c2ln"


def with_credential(expires: datetime) -> bytes:
    return json.dumps({**json.loads(COMMAND), "credential": jwt(expires)}).encode()


class TestWhatMayBeSentBack:
    def test_the_expiry_of_the_token_a_command_carries(self) -> None:
        assert deadletters.token_expiry(with_credential(T0)) == T0
        assert deadletters.token_expiry(COMMAND) is None
        assert deadletters.token_expiry(json.dumps({"credential": "a.!!!.c"}).encode()) is None

    def test_a_command_whose_token_expired_would_be_refused_and_is_not_sent(self) -> None:
        [d] = deadletters.parse([dead(0, with_credential(T0))])
        assert "expired at 2025-06-01T10:00:00.000Z" in deadletters.why_not(d, T0 + timedelta(minutes=1))
        assert deadletters.why_not(d, T0 - timedelta(minutes=1)) is None

    def test_an_event_is_not_judged_by_a_token(self) -> None:
        [d] = deadletters.parse([dead(0, with_credential(T0), source=f"{topics.INFUSION_EVENTS}/0/1")])
        assert deadletters.why_not(d, T0 + timedelta(days=1)) is None

    def test_without_a_source_or_a_value_there_is_nothing_to_send_back(self) -> None:
        assert "source" in deadletters.why_not(deadletters.parse([dead(0, source="?")])[0], T0)
        assert "no value" in deadletters.why_not(deadletters.parse([dead(0, None)])[0], T0)

    async def test_one_already_replayed_is_passed_over_without_again_and_nothing_is_sent(self) -> None:
        letters = deadletters.parse([dead(0), marker(1, "0:0"), dead(2, None)])

        async def record(d, r):  # pragma: no cover - nothing is sent
            raise AssertionError("nothing should be sent")

        # the broker address is never used: there is nothing to send
        outcomes = await deadletters.send_back("127.0.0.1:1", letters, by="admin.rossi", record=record)
        assert [(o.letter.id, o.status) for o in outcomes] == [("0:0", "skipped"), ("0:2", "refused")]
        assert "already replayed 2025-06-02T08:00:00.000Z by admin.rossi" in outcomes[0].line()
        assert "--again" in outcomes[0].line()


class TestArguments:
    """Refused before anything is read, in one line, exit status 2."""

    @pytest.mark.parametrize("argv", [["replay"], ["replay", "0:1", "--all"], ["replay", "0:1", "--source", "t"],
                                      ["replay", "zero"], ["list", "--since", "2025-06-01T10:00"]])
    def test_malformed_arguments(self, argv: list[str], capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
        monkeypatch.setenv("CELLTRAIL_TOKEN", "t")
        monkeypatch.setenv("CELLTRAIL_TOKEN_PUBLIC_KEY", "k")
        assert cli.main(["deadletters", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("celltrail deadletters: ") and err.count("\n") == 1
