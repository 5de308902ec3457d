"""Rebuilding an aggregate from its events, the one way every service does it.

An aggregate's state is what its single `apply` makes of its stream's events, in stream
order, starting from its initial state; its decisions (methods that check rules, raise a
named refusal and return new events) read that state and never change it (STYLE 5).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import TypeVar

from contracts.base import EventPayload


class Aggregate(ABC):
    """An event-sourced aggregate: state changes in `apply` and nowhere else."""

    @abstractmethod
    def apply(self, event: EventPayload) -> None:
        """Record one past event in the state. An event type the aggregate does not follow
        changes nothing."""


A = TypeVar("A", bound=Aggregate)


def rebuild(aggregate: A, events: Iterable[EventPayload]) -> A:
    """`aggregate`, given in its initial state, after applying `events` in order."""
    for event in events:
        aggregate.apply(event)
    return aggregate
