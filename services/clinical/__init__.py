"""Clinical rules of CellTrail, one rule family per module.

A library, not a service: pure functions and frozen dataclasses over the standard library,
pydantic (input checks by declared types) and scipy. It imports nothing of ours (no
``contracts``, no ``infra``, no service), so every service may import it; import-linter
enforces this in ``pyproject.toml``. Every rule cites its source where it is encoded.
"""
