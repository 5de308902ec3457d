"""services/kernel/values.evolve: the same value as dataclasses.replace, or a refusal."""

import dataclasses

import pytest

from services.kernel.values import evolve
from services.projection.domain.subject_view import Product, SubjectView, TimelineEntry


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: tuple[int, ...] = ()


def test_same_value_as_replace() -> None:
    p = Point(1, (2,))
    assert evolve(p, y=(3,)) == dataclasses.replace(p, y=(3,)) == Point(1, (3,))
    assert evolve(p) == p and evolve(p) is not p
    assert hash(evolve(p, x=5)) == hash(Point(5, (2,)))


def test_original_is_unchanged_and_result_is_frozen() -> None:
    p = Point(1)
    q = evolve(p, x=2)
    assert p.x == 1 and q.x == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.x = 3  # type: ignore[misc]


def test_unknown_field_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="Point has no field z"):
        evolve(Point(1), z=2)


def test_classes_it_cannot_copy_are_refused() -> None:
    @dataclasses.dataclass
    class Mutable:
        x: int

    @dataclasses.dataclass(frozen=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            assert self.x >= 0

    @dataclasses.dataclass(frozen=True)
    class Derived:
        x: int
        doubled: int = dataclasses.field(init=False, default=0)

    for value in (Mutable(1), Checked(1), Derived(1)):
        with pytest.raises(TypeError, match="evolve"):
            evolve(value, x=2)


def test_read_model_values_match_replace() -> None:
    view = SubjectView("S-1", centre_id="C", phase="enrolled",
                       timeline=(TimelineEntry(at="2024-01-01T00:00:00+00:00", on="2024-01-01", event_type="x",
                                               summary="s", event_id="e"),),
                       products=(Product(coi_id="W"),))
    changes = dict(phase="collected", dose_level=2, relapses=("2024-02-01",))
    assert evolve(view, **changes) == dataclasses.replace(view, **changes)
    assert evolve(view, **changes).to_json() == dataclasses.replace(view, **changes).to_json()


def test_a_cached_property_is_computed_again_from_the_new_fields() -> None:
    import functools

    @dataclasses.dataclass(frozen=True)
    class Entry:
        at: str
        on: str | None = None

        @functools.cached_property
        def order(self) -> tuple:
            return (self.on or self.at[:10], self.at)

    e = Entry("2024-01-01T23:30:00+00:00")
    assert e.order == ("2024-01-01", e.at)
    moved = evolve(e, on="2024-01-02")
    assert moved.order == ("2024-01-02", e.at) and e.order == ("2024-01-01", e.at)
    assert moved == Entry(e.at, "2024-01-02")
