"""Export the JSON Schema of every contract: `python -m contracts.export [--check]`.

Writes `contracts/schemas/<event_type or command_type>.v<schema_version>.json` for every
event payload and command payload at its CURRENT schema version, plus the two envelopes
(`EventEnvelope.v1.json`, `CommandEnvelope.v1.json`). Output is deterministic: sorted keys,
two-space indent, trailing newline.

Published files are never overwritten carelessly:
- a file for an OLDER version (e.g. the hand-written `assessment.ResponseAssessed.v1.json`)
  is never written, since only current versions are generated;
- a file for the current version is rewritten only if the change is backward compatible
  for consumers (`contracts.compat.incompatibilities` is empty). An incompatible change
  needs a new `schema_version` and an upcaster in `contracts/registry.py`, not a new file
  under the old name; the export refuses and exits non-zero.

`--check` writes nothing and exits non-zero if any file is missing or out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from contracts.compat import incompatibilities
from contracts.envelope import CommandEnvelope, EventEnvelope
from contracts.registry import COMMAND_TYPES, EVENT_TYPES

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
ENVELOPE_VERSION = 2  # envelopes carry no schema_version of their own; bump by hand (2: `actor` a principal id, issue 8)


@dataclass(frozen=True)
class Published:
    """One contract at its current version and the file its schema is published in."""

    name: str  # event_type, command_type or envelope class name
    version: int
    model: type[BaseModel]
    kind: str  # "event" | "command" | "envelope"

    @property
    def filename(self) -> str:
        return schema_filename(self.name, self.version)

    def schema(self) -> dict[str, Any]:
        return model_schema(self.model)


def schema_filename(name: str, version: int) -> str:
    return f"{name}.v{version}.json"


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema a consumer validates a message against (pydantic validation mode)."""
    return model.model_json_schema(mode="validation")


def contracts() -> list[Published]:
    out = [Published(t, cls.schema_version, cls, "event") for t, cls in sorted(EVENT_TYPES.items())]
    out += [Published(t, cls.schema_version, cls, "command") for t, cls in sorted(COMMAND_TYPES.items())]
    out += [Published(cls.__name__, ENVELOPE_VERSION, cls, "envelope") for cls in (EventEnvelope, CommandEnvelope)]
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class Outcome:
    written: list[str]
    unchanged: list[str]
    refused: dict[str, list[str]]  # filename -> incompatibilities
    stale: list[str]  # with check=True: missing or different, nothing written


def export(out_dir: Path = SCHEMAS_DIR, *, check: bool = False) -> Outcome:
    out_dir.mkdir(parents=True, exist_ok=True)
    outcome = Outcome([], [], {}, [])
    for item in contracts():
        path = out_dir / item.filename
        schema = item.schema()
        text = render(schema)
        if path.exists():
            if path.read_text(encoding="utf-8") == text:
                outcome.unchanged.append(item.filename)
                continue
            problems = incompatibilities(load(path), schema)
            if problems:
                outcome.refused[item.filename] = problems
                continue
        if check:
            outcome.stale.append(item.filename)
            continue
        path.write_text(text, encoding="utf-8")
        outcome.written.append(item.filename)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.export", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=SCHEMAS_DIR, help="directory (default: contracts/schemas)")
    parser.add_argument("--check", action="store_true", help="write nothing; fail if anything is out of date")
    args = parser.parse_args(argv)
    outcome = export(args.out, check=args.check)
    for name in outcome.written:
        print(f"wrote {args.out / name}")
    for name in outcome.stale:
        print(f"out of date: {args.out / name} (compatible change: re-run python -m contracts.export)")
    for name, problems in outcome.refused.items():
        print(f"REFUSED {args.out / name}: backward-incompatible change; bump schema_version and add an "
              f"upcaster in contracts/registry.py:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
    print(f"{len(outcome.written)} written, {len(outcome.unchanged)} unchanged, "
          f"{len(outcome.stale)} out of date, {len(outcome.refused)} refused")
    return 1 if outcome.refused or outcome.stale else 0


if __name__ == "__main__":
    sys.exit(main())
