"""Projection handler: fold one event into its subject's view and emit implied outcomes."""

from __future__ import annotations

from contracts.base import EventPayload
from contracts.envelope import EventEnvelope
from services.projection.application.ports import Outcomes, ReadModels
from services.projection.domain.subject_view import SubjectView, fold, outcome_key, outcomes


async def project(read_models: ReadModels, emitter: Outcomes, env: EventEnvelope, event: EventPayload) -> None:
    if not await read_models.mark_applied(env.event_id):
        return  # a redelivery or a republished event: already applied
    if env.subject_id is None:
        return  # centre events and rejections of unknown subjects shape no subject view
    view = await read_models.get(env.subject_id) or SubjectView(env.subject_id)
    new = fold(view, event, env.occurred_at)
    if new == view:
        return
    await read_models.put(new)
    for outcome in outcomes(new):
        await emitter.emit(outcome, outcome_key(outcome), env)
