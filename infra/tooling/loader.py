"""`celltrail load FILE.jsonl`: submit scripted commands through the same path live
traffic takes (Kafka command topics; patient registration via enrollment's HTTP API).
The file format is documented in docs/load-format.md.

Each line is validated against the contracts before anything is sent: a bad line is
reported with its number and reason and skipped; good lines are still submitted. Lines
run in file order; each waits for its outcome (the events it caused, or its rejection)
and for every consumer to catch up, so later lines see the effects of earlier ones.

Loading a file again is harmless (issue 12 item 4). Every line is submitted with an
idempotency key derived from the file and the line (`line_key`): the absolute path of the
file (or, for lines given without one, a hash of all of them), the line's number and its
text. So the same file loaded twice gives the same keys, and each of its lines is reported
`DUPLICATE: original outcome ...` and changes nothing; lines appended to the file since are
new commands; an edited line is a new command, judged by the services' own rules (a second,
different observation of one kind for the same subject and time is refused unless marked as a
correction). Before a command goes to its topic, the loader asks its service for the outcome
recorded under the key (`GET /command-outcomes`); a service answers a resubmission over HTTP
with the original answer (`Idempotency-Key`, `Idempotent-Replayed`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.parse
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from contracts import topics, topology
from contracts.base import CommandPayload, describe_unprintable, from_json
from contracts.commands import RegisterPatient, ScreenCandidate
from contracts.envelope import CommandEnvelope, EventEnvelope
from contracts.registry import COMMAND_TYPES
from infra.runtime.access.principals import PRINCIPAL_ID
from infra.runtime.messaging import new_producer
from infra.tooling.access import AccessCliError, TokenSource
from infra.tooling.specs import subscriptions

def line_key(source: str, n: int, text: str) -> str:
    """The idempotency key of line `n` (its `text`) of the file `source` names: the same file
    and line give the same key, so a file loaded again is recognised line by line."""
    return "load:" + hashlib.sha256(f"{source}\n{n}\n{text.strip()}".encode()).hexdigest()


def source_of(lines: list[str], path: str | Path | None) -> str:
    """What names a file for `line_key`: its absolute path (a file edited in place, lines
    appended, keeps the keys of its unchanged lines), or, for lines given without a path, the
    hash of all of them."""
    if path is not None:
        return str(Path(path).resolve())
    return "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()


def command_record(command: CommandPayload, actor: str, credential: str,
                   idempotency_key: str | None = None) -> tuple[CommandEnvelope, dict[str, Any]]:
    """A command as it travels on its topic (`command.topic`), submitted as principal
    `actor` with its token `credential`: its envelope, and the producer's `value`, `key` and
    `headers` for it."""
    env = CommandEnvelope.wrap(command, actor=actor, credential=credential, idempotency_key=idempotency_key)
    return env, {"value": env.model_dump_json().encode(), "key": env.key, "headers": [
        (topics.HEADER_MESSAGE_ID, str(env.command_id).encode()),
        (topics.HEADER_MESSAGE_TYPE, env.command_type.encode())]}


REPLAYED = "idempotent-replayed"  # the header of an answer given again for a resubmission


def _post(enrollment_url: str, path: str, cmd: CommandPayload, token: str, timeout: float,
          idempotency_key: str | None = None) -> dict[str, Any]:
    """`cmd` to enrollment's HTTP API as the bearer of `token`, who is the actor recorded;
    the JSON answer (with `"replayed": true` when it is the answer to an earlier request
    under `idempotency_key`), or `urllib.error.HTTPError` for a refusal."""
    headers = {"content-type": "application/json", "Authorization": f"Bearer {token}"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    req = urllib.request.Request(f"{enrollment_url}{path}", data=cmd.model_dump_json().encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = json.loads(r.read())
        if r.headers.get(REPLAYED) == "true":
            body["replayed"] = True
        return body


def post_patient(enrollment_url: str, cmd: RegisterPatient, token: str, timeout: float,
                 idempotency_key: str | None = None) -> dict[str, Any]:
    """Registers a patient (identifiers never travel on Kafka): `{"subject_id": ..., "created": ...}`."""
    return _post(enrollment_url, "/patients", cmd, token, timeout, idempotency_key)


def post_screening(enrollment_url: str, cmd: ScreenCandidate, token: str, timeout: float,
                   idempotency_key: str | None = None) -> dict[str, Any]:
    """Screens a subject (the age needs the identity table): the `enrollment.CandidateScreened`."""
    return _post(enrollment_url, "/screenings", cmd, token, timeout, idempotency_key)


def recorded_outcome(service_url: str, key: str, token: str, timeout: float) -> dict[str, Any] | None:
    """The outcome a service recorded under `key` for the bearer of `token`, or None."""
    req = urllib.request.Request(f"{service_url}/command-outcomes?key={urllib.parse.quote(key, safe='')}",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = json.loads(r.read())
    return body if body.get("recorded") else None


# Commands a file may hold that go to enrollment's HTTP API, not to a topic
HTTP_COMMANDS = ("RegisterPatient", "ScreenCandidate")


class LoadFileError(ValueError):
    pass


@dataclass
class LineResult:
    line: int
    command_type: str | None
    status: str  # accepted | refused | duplicate | invalid | timeout
    detail: str
    events: list[str] = field(default_factory=list)
    # a duplicate's: the original outcome (accepted | refused) of the command it resubmits
    original: str | None = None

    @property
    def succeeded(self) -> bool:
        """Accepted, now or when first submitted."""
        return self.status == "accepted" or (self.status == "duplicate" and self.original == "accepted")

    def __str__(self) -> str:
        head = f"line {self.line}"
        if self.command_type:
            head += f" {self.command_type}"
        return f"{head}: {self.status.upper()}: {self.detail}"


@dataclass
class ParsedLine:
    line: int
    command_type: str
    fields: dict[str, Any]
    ref: str | None
    subject_ref: str | None
    principal: str | None = None  # who submits the line; None: the CLI's system principal
    donor_ref: str | None = None  # a donor registered by an earlier line (`ref`), for `donor_id`


def parse_line(n: int, text: str) -> ParsedLine:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadFileError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # an integer of more than 4,300 digits; nesting too deep
        raise LoadFileError(f"not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise LoadFileError("a line must be a JSON object")
    command_type = obj.pop("command", None)
    if not isinstance(command_type, str) or command_type not in COMMAND_TYPES:
        raise LoadFileError(f"unknown or missing \"command\": {_shown(command_type)}; "
                            f"expected one of {sorted(COMMAND_TYPES)}")
    if COMMAND_TYPES[command_type].topic is None and command_type not in HTTP_COMMANDS:
        raise LoadFileError(f"{command_type} is not loaded from files (see the `celltrail` command table)")
    ref = obj.pop("ref", None)
    subject_ref = obj.pop("subject_ref", None)
    donor_ref = obj.pop("donor_ref", None)
    principal = obj.pop("principal", None)
    if principal is not None and not (isinstance(principal, str) and PRINCIPAL_ID.match(principal)):
        raise LoadFileError(f"\"principal\" must be a principal id ({PRINCIPAL_ID.pattern}), not {_shown(principal)}")
    for key, value in (("ref", ref), ("subject_ref", subject_ref), ("donor_ref", donor_ref)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise LoadFileError(f"\"{key}\" must be a non-empty string, not {_shown(value)}")
        if value is not None and (why := describe_unprintable(value)) is not None:
            raise LoadFileError(f"\"{key}\": {why}")
    if ref is not None and command_type != "RegisterPatient":
        raise LoadFileError("\"ref\" is only allowed on RegisterPatient lines")
    if subject_ref is not None and "subject_id" in obj:
        raise LoadFileError("give either \"subject_id\" or \"subject_ref\", not both")
    if donor_ref is not None and "donor_id" in obj:
        raise LoadFileError("give either \"donor_id\" or \"donor_ref\", not both")
    return ParsedLine(n, command_type, obj, ref, subject_ref, principal, donor_ref)


def _shown(value: Any, limit: int = 80) -> str:
    """A value from a line as JSON, ASCII only, cut at `limit` characters."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(line)'}: {e['msg']}" for e in exc.errors())


class Loader:
    def __init__(self, bootstrap_servers: str, enrollment_url: str, projection_url: str,
                 tokens: TokenSource | None, timeout: float = 30.0,
                 service_urls: Mapping[str, str] | None = None) -> None:
        """`tokens`: the credentials lines are submitted with (None only where nothing is sent).
        `service_urls`: each service's HTTP API by name, where a command's recorded outcome is
        asked for before it is sent again (without: a resubmission is still harmless, but is
        reported as a timeout, as nothing answers it on the topics)."""
        self.bootstrap, self.enrollment_url, self.projection_url = bootstrap_servers, enrollment_url, projection_url
        self.tokens, self.timeout = tokens, timeout
        self.service_urls = dict(service_urls or {})
        self.source = ""  # what names the file being loaded (`source_of`)
        self.refs: dict[str, str] = {}
        self.ref_lines: dict[str, int] = {}  # each ref names one patient: the line that defined it
        self._seen: dict[uuid.UUID, list[EventEnvelope]] = {}

    async def load(self, lines: list[str], path: str | Path | None = None) -> list[LineResult]:
        """`path`: the file `lines` were read from, which names it in each line's idempotency key."""
        self.source = source_of(lines, path)
        producer = new_producer(self.bootstrap)
        watcher = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None,
                                   fetch_max_wait_ms=20)
        # One probe per service group: never subscribes (so never joins or disturbs the
        # group), only reads the group's committed offsets.
        probes = {g: AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=g, enable_auto_commit=False)
                  for g in subscriptions()}
        await producer.start()
        await watcher.start()
        for probe in probes.values():
            await probe.start()
        try:
            await watcher.topics()
            parts = [TopicPartition(t, p) for t in topics.EVENT_TOPICS
                     for p in sorted(watcher.partitions_for_topic(t) or ())]
            watcher.assign(parts)
            await watcher.seek_to_end(*parts)
            for tp in parts:
                await watcher.position(tp)
            results = []
            for n, text in enumerate(lines, start=1):
                if not text.strip() or text.lstrip().startswith("#"):
                    continue
                results.append(await self._one(n, text, producer, watcher, probes, parts))
            return results
        finally:
            for probe in probes.values():
                await probe.stop()
            await watcher.stop()
            await producer.stop()

    def validate(self, n: int, text: str) -> tuple[ParsedLine, Any] | LineResult:
        """Line `n` parsed into its command, or its INVALID result; no I/O. A `ref` names one
        patient for the whole file, so a repeated `ref` is invalid."""
        parsed = None
        try:
            parsed = parse_line(n, text)
            if parsed.ref is not None:
                if parsed.ref in self.ref_lines:
                    raise LoadFileError(f"ref {parsed.ref!r} is already used by line {self.ref_lines[parsed.ref]}; "
                                        "each RegisterPatient line needs a ref of its own")
                self.ref_lines[parsed.ref] = n
            if parsed.subject_ref is not None:
                if parsed.subject_ref not in self.refs:
                    raise LoadFileError(f"subject_ref {parsed.subject_ref!r} was not registered by an earlier line")
                parsed.fields["subject_id"] = self.refs[parsed.subject_ref]
            if parsed.donor_ref is not None:
                if parsed.donor_ref not in self.refs:
                    raise LoadFileError(f"donor_ref {parsed.donor_ref!r} was not registered by an earlier line")
                parsed.fields["donor_id"] = self.refs[parsed.donor_ref]
            return parsed, from_json(COMMAND_TYPES[parsed.command_type], parsed.fields)  # strictly: "12" is no number
        except LoadFileError as exc:
            return LineResult(n, parsed.command_type if parsed else None, "invalid", str(exc))
        except ValidationError as exc:
            return LineResult(n, parsed.command_type if parsed else None, "invalid", _validation_message(exc))

    async def _one(self, n, text, producer, watcher, probes, parts) -> LineResult:
        checked = self.validate(n, text)
        if isinstance(checked, LineResult):
            return checked
        parsed, command = checked
        try:
            actor, token = await self.tokens.token(parsed.principal)
        except AccessCliError as exc:
            return LineResult(n, parsed.command_type, "invalid", f"no credential: {exc}")
        key = line_key(self.source, n, text)
        if isinstance(command, RegisterPatient):
            return await self._register_patient(n, parsed, command, actor, token, key)
        if isinstance(command, ScreenCandidate):
            return await self._screen(n, command, token, key)
        if (known := await self._recorded(command, key, token)) is not None:
            return duplicate(n, known)
        env, record = command_record(command, actor, token, key)
        await producer.send_and_wait(command.topic, **record)
        caused = await self._await_outcome(watcher, env.command_id)
        if caused is None:
            # a submission of the same line (an earlier load that timed out) may have won
            if (known := await self._recorded(command, key, token)) is not None:
                return duplicate(n, known)
            return LineResult(n, env.command_type, "timeout", f"no outcome within {self.timeout}s")
        await self._await_quiescence(probes, watcher, parts)
        rejected = [e for e in caused if e.event_type == "common.CommandRejected"]
        if rejected:
            p = rejected[0].payload
            return LineResult(n, env.command_type, "refused", f"{p['reason_code']}: {p['reason']}")
        return LineResult(n, env.command_type, "accepted", ", ".join(e.event_type for e in caused),
                          [e.event_type for e in caused])

    async def _recorded(self, command: CommandPayload, key: str, token: str) -> dict[str, Any] | None:
        """The outcome the command's service recorded under `key`, if it knows one."""
        url = self.service_urls.get(next((s for s in topology.SERVICES if topology.commands_topic(s) == command.topic),
                                         ""))
        if url is None:
            return None
        return await asyncio.to_thread(recorded_outcome, url, key, token, self.timeout)

    async def _register_patient(self, n: int, parsed: ParsedLine, cmd: RegisterPatient, actor: str,
                                token: str, key: str) -> LineResult:
        try:
            body = await asyncio.to_thread(post_patient, self.enrollment_url, cmd, token, self.timeout, key)
        except urllib.error.HTTPError as exc:
            return _http_refusal(n, "RegisterPatient", exc)
        if parsed.ref:
            self.refs[parsed.ref] = body["subject_id"]
        return _http_result(n, "RegisterPatient", body,
                            f"subject {body['subject_id']}" + ("" if body["created"] else " (already registered)"))

    async def _screen(self, n: int, cmd: ScreenCandidate, token: str, key: str) -> LineResult:
        """Recorded either way: eligible, or with every failed criterion (the line is accepted;
        an enrolment of an ineligible candidate is then refused)."""
        try:
            body = await asyncio.to_thread(post_screening, self.enrollment_url, cmd, token, self.timeout, key)
        except urllib.error.HTTPError as exc:
            return _http_refusal(n, "ScreenCandidate", exc)
        verdict = ("eligible" if body["eligible"] else
                   "not eligible: " + "; ".join(f"{f['criterion']}: {f['reason']}" for f in body["failures"]))
        return _http_result(n, "ScreenCandidate", body, f"{cmd.programme_id} v{body['programme_version']}: {verdict}")

    async def _await_outcome(self, watcher: AIOKafkaConsumer, command_id: uuid.UUID) -> list[EventEnvelope] | None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if command_id in self._seen:
                # give the rest of the same transaction's events a moment to arrive
                await self._drain(watcher, 20)
                return self._seen.pop(command_id)
            await self._drain(watcher, 100)
        return None

    async def _drain(self, watcher: AIOKafkaConsumer, timeout_ms: int) -> None:
        batch = await watcher.getmany(timeout_ms=timeout_ms)
        for records in batch.values():
            for r in records:
                try:
                    env = EventEnvelope.model_validate_json(r.value)
                except ValidationError:
                    continue  # not ours to judge: consumers dead-letter malformed events
                if env.causation_id is not None:
                    self._seen.setdefault(env.causation_id, []).append(env)

    async def _await_quiescence(self, probes: dict[str, AIOKafkaConsumer], watcher: AIOKafkaConsumer,
                                parts: list[TopicPartition]) -> None:
        """Wait until every service's consumer group and the projection have applied
        everything on the event topics, so the next line sees this line's effects."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            ends = await watcher.end_offsets(parts)
            behind = False
            for group, subscribed in subscriptions().items():
                for tp, end in ends.items():
                    if tp.topic in subscribed and end > 0 and (await probes[group].committed(tp) or 0) < end:
                        behind = True
            if not behind and await projection_lag(self.projection_url, (await self.tokens.token())[1]) == 0:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"consumers did not catch up within {self.timeout}s")


def duplicate(n: int, known: dict[str, Any]) -> LineResult:
    """A line whose command was submitted before under its key: what happened then."""
    events = [e["event_type"] for e in known.get("events", ())]
    return LineResult(n, known["command_type"], "duplicate",
                      f"original outcome {known['summary']} (command {known.get('command_id')})", events,
                      original=known["outcome"])


def _http_result(n: int, command_type: str, body: dict[str, Any], detail: str) -> LineResult:
    if body.get("replayed"):
        return LineResult(n, command_type, "duplicate", f"original outcome accepted: {detail}", original="accepted")
    return LineResult(n, command_type, "accepted", detail)


def _http_refusal(n: int, command_type: str, exc: urllib.error.HTTPError) -> LineResult:
    raw = exc.read() or b"{}"
    try:
        detail = json.loads(raw)
    except ValueError:
        detail = None
    if not isinstance(detail, dict):  # not a CellTrail answer (a proxy's page, say): said as it came
        detail = {"error": raw[:200].decode("utf-8", "replace")}
    reason = f"{detail.get('code', exc.code)}: {detail.get('error')}"
    if exc.headers.get(REPLAYED) == "true":
        return LineResult(n, command_type, "duplicate", f"original outcome refused: {reason}", original="refused")
    return LineResult(n, command_type, "refused", reason)


async def projection_lag(projection_url: str, token: str) -> int | None:
    def get() -> int | None:
        req = urllib.request.Request(f"{projection_url}/status", headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return json.loads(r.read())["lag"]
        except urllib.error.HTTPError:
            return None

    return await asyncio.to_thread(get)


def read_lines(path: Path) -> list[str]:
    """The file's lines, or LoadFileError saying in one line what is wrong with the file."""
    what = "a load file is UTF-8 JSON Lines (docs/load-format.md)"
    if not path.exists():
        raise LoadFileError(f"{path} does not exist")
    if path.is_dir():
        raise LoadFileError(f"{path} is a directory, not a file; {what}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadFileError(f"{path} cannot be read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise LoadFileError(f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); {what}") from None
    return text.splitlines()
