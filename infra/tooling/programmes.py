"""The bundled programme definitions (issue 10 item 1): one file per seed programme in
`infra/tooling/programmes/`, each validated by the contract (contracts/programmes.py) and by
the clinical rules when enrollment applies it. `celltrail programmes publish FILE...` publishes
a definition as the programme's next version; a system started by `celltrail up` (or `demo`)
publishes the bundled ones whose programme has none yet, so a new network starts with the
four programmes of the seeds, and later versions are the network's own."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import asyncpg

from contracts.base import from_json
from contracts.programmes import ProgrammeDefinition
from infra.tooling.loader import LineResult, Loader

BUNDLED = resources.files("infra.tooling").joinpath("programmes")


def bundled() -> list[ProgrammeDefinition]:
    """The bundled definitions, one per seed programme, in programme-id order."""
    return [ProgrammeDefinition.model_validate_json(p.read_text(encoding="utf-8"))
            for p in sorted(BUNDLED.iterdir(), key=lambda p: p.name) if p.name.endswith(".json")]


def read(path: Path) -> ProgrammeDefinition:
    """A definition file, validated by the contract, strictly as every edge reads its input
    (contracts/base.py, `from_json`: `"12"` is not a number); a ValidationError names the field."""
    return from_json(ProgrammeDefinition, path.read_text(encoding="utf-8"))


def publish_line(definition: ProgrammeDefinition) -> str:
    """The definition as a line of a load file (docs/load-format.md)."""
    return json.dumps({"command": "PublishProgramme", "definition": definition.model_dump(mode="json")})


async def unpublished(database_url: str, definitions: list[ProgrammeDefinition]) -> list[ProgrammeDefinition]:
    """Those of `definitions` whose programme has no published version in this system."""
    conn = await asyncpg.connect(database_url)
    try:
        published = {r["stream_id"] for r in await conn.fetch(
            "SELECT DISTINCT stream_id FROM enrollment.events WHERE event_type = 'enrollment.ProgrammePublished'")}
    finally:
        await conn.close()
    return [d for d in definitions if f"programme-{d.programme_id}" not in published]


async def publish(loader: Loader, definitions: list[ProgrammeDefinition]) -> list[LineResult]:
    return await loader.load([publish_line(d) for d in definitions])
