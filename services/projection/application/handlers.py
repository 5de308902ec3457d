"""Projection handler: fold events into their subjects' views and emit implied outcomes, and
the outcomes of the events about a programme (no subject; no view: each from its event).

Works a batch at a time (one broker fetch, one transaction; the consumer has already
claimed the events' ids, so every item is new): load the views it touches, fold in memory,
write each changed view once and emit the outcomes of its final state. The result equals folding one event at a time, because the
fold is order-insensitive and outcomes are keyed by content.
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts.base import EventPayload
from contracts.envelope import EventEnvelope
from services.projection.application.ports import Outcomes, ReadModels
from services.projection.domain.programme import programme_outcomes
from services.projection.domain.subject_view import SubjectView, fold, outcome_key, outcomes


async def project_batch(read_models: ReadModels, emitter: Outcomes,
                        items: Sequence[tuple[EventEnvelope, EventPayload]]) -> None:
    # a programme's outcomes (the MTD of its dose escalation) come from their event alone
    about_programmes = [(o, outcome_key(o), env) for env, event in items for o in programme_outcomes(event)]
    if about_programmes:
        await emitter.emit_many(about_programmes)
    todo = [(env, event) for env, event in items if env.subject_id is not None]
    if not todo:
        return
    before = await read_models.get_many(sorted({env.subject_id for env, _ in todo}))
    views = dict(before)
    causes: dict[str, EventEnvelope] = {}
    for env, event in todo:
        view = views.get(env.subject_id) or SubjectView(env.subject_id)
        new = fold(view, event, env.occurred_at, str(env.event_id))
        # A fold that changes nothing returns the view itself. Compared by identity, not by
        # value: comparing two 50-field views per event was a tenth of the fold's time
        # (`python -m infra.bench.projection_cpu --profile`); a view folded into an equal new
        # value is written again, which changes nothing either.
        if new is not view:
            views[env.subject_id] = new
            causes[env.subject_id] = env
    changed = [v for sid, v in views.items() if sid in causes]
    if not changed:
        return
    await read_models.put_many(changed)
    await emitter.emit_many([(o, outcome_key(o, v), causes[v.subject_id]) for v in changed for o in outcomes(v)])


async def project(read_models: ReadModels, emitter: Outcomes, env: EventEnvelope, event: EventPayload) -> None:
    """One event: a batch of one."""
    await project_batch(read_models, emitter, [(env, event)])
