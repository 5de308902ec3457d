"""The projection applies a broker fetch as one batch; it must equal one event at a time.
(Redelivered and repeated events never reach it: the consumer's inbox claims ids first, see
tests/integration/test_consumer.py.)"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.projection.application.handlers import project, project_batch
from tests.unit.services.fakes import FakeOutcomes, FakeReadModels, envelope
from tests.unit.services.test_projection import (
    SUBJECT,
    assessed,
    collected,
    enrolled,
    infused,
    registered,
    released,
)
from tests.unit.services.test_projection_release import exceptional_journey


def journey_envelopes():
    events = [registered(), enrolled(), collected(), released(), infused(), assessed(27), assessed(31)]
    return [(envelope(e, subject_id=SUBJECT, occurred_at=at), e) for e, at in events]


class TestBatch:
    @settings(max_examples=40, deadline=None)
    @given(order=st.permutations(range(7)), cut=st.integers(0, 7))
    async def test_batches_of_any_split_and_order_give_the_view_of_one_at_a_time(self, order, cut):
        items = [journey_envelopes()[i] for i in order]
        one, one_out = FakeReadModels(), FakeOutcomes()
        for env, event in items:
            await project(one, one_out, env, event)
        batched, batched_out = FakeReadModels(), FakeOutcomes()
        await project_batch(batched, batched_out, items[:cut])
        await project_batch(batched, batched_out, items[cut:])

        assert batched.views == one.views
        assert set(batched_out.published) <= set(one_out.published)  # a batch emits only final states
        assert any(k.startswith("day28:") and k.endswith(":27") for k in batched_out.published)


class TestBatchOfAnExceptionalRelease:
    """Issue 9 item 4: QC results, the signed release, the exceptional release and the
    sponsor's notification, in batches of any split and order, as one at a time."""

    @settings(max_examples=40, deadline=None)
    @given(order=st.permutations(range(15)), cut=st.integers(0, 15))
    async def test_batches_of_any_split_and_order_give_the_view_of_one_at_a_time(self, order, cut):
        events = [(envelope(e, subject_id=SUBJECT, occurred_at=at), e) for e, at in exceptional_journey()]
        items = [events[i] for i in order]
        one = FakeReadModels()
        for env, event in items:
            await project(one, FakeOutcomes(), env, event)
        batched = FakeReadModels()
        await project_batch(batched, FakeOutcomes(), items[:cut])
        await project_batch(batched, FakeOutcomes(), items[cut:])

        assert batched.views == one.views
        assert [u.state for u in batched.views[SUBJECT].units] == ["released", "infused"]
