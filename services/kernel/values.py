"""Immutable values, changed by copying: `evolve` is `dataclasses.replace` for the frozen,
plain dataclasses that read models fold (services/projection/domain).

`dataclasses.replace` runs the class's generated `__init__` with every field, which for the
projection's 50-field `SubjectView` was a tenth of a rebuild's CPU time (`python -m
infra.bench.projection_cpu --profile`, docs/benchmark.md). A frozen dataclass without
`__post_init__`, init-only variables or slots holds nothing but its fields in its
`__dict__`, so a copy of that dict with the changes is the same value, at the cost of a dict
copy; the changes are checked against the fields, as `replace` checks them. A value remembered by
`functools.cached_property` (kept in the same `__dict__`) is not copied: it is computed again
from the new fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_FIELDS: dict[type, frozenset[str]] = {}


def _fields_of(cls: type) -> frozenset[str]:
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(f"evolve() takes a frozen dataclass, not {cls.__name__}")
    if hasattr(cls, "__post_init__") or hasattr(cls, "__slots__"):
        raise TypeError(f"evolve() cannot copy {cls.__name__}: it has __post_init__ or __slots__ (use dataclasses.replace)")
    fields = dataclasses.fields(cls)
    if any(not f.init for f in fields) or any(isinstance(f.type, dataclasses.InitVar) for f in fields):
        raise TypeError(f"evolve() cannot copy {cls.__name__}: it has fields outside __init__ (use dataclasses.replace)")
    _FIELDS[cls] = names = frozenset(f.name for f in fields)
    return names


def evolve(value: T, **changes: Any) -> T:
    """`value` with `changes`, as `dataclasses.replace(value, **changes)` gives it."""
    cls = type(value)
    names = _FIELDS.get(cls) or _fields_of(cls)
    if not names.issuperset(changes):
        unknown = ", ".join(sorted(set(changes) - names))
        raise TypeError(f"{cls.__name__} has no field {unknown}")
    new = object.__new__(cls)
    state = new.__dict__
    state.update(value.__dict__)
    state.update(changes)
    if len(state) > len(names):  # a functools.cached_property of the original: computed again
        for name in [n for n in state if n not in names]:
            del state[name]
    return new
