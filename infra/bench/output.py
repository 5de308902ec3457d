"""The run as one JSON document (`--json-out FILE` or CELLTRAIL_BENCH_JSON=FILE)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.bench.report import Section


def document(config: dict[str, Any], environment: dict[str, Any], sections: list[Section]) -> dict[str, Any]:
    """`config`, `environment`, one key per measurement (its figures), and `targets`: every
    target with figure, bound and verdict."""
    doc: dict[str, Any] = {"config": config, "environment": environment}
    for s in sections:
        doc[s.key] = {**s.figures, "failures": s.failures}
    doc["targets"] = [t.as_json() for s in sections for t in s.targets]
    return doc


def write(path: str | Path, doc: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")
