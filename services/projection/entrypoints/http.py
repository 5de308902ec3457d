"""Projection HTTP API: read models as JSON, and the rebuild trigger.

Who sees what (the policy, applied per item): a subject is listed and shown to whoever may
`read_subject` for its centre (centre staff: their own centre's; the network operator:
every centre's), identified only to whoever may also `read_identifiers` for that centre,
de-identified to everyone else (`domain.deidentify`). The report counts only the subjects
of the centres the caller may `read_report` for."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from infra.runtime.access.policy import Action, Resource
from infra.runtime.endpoints import Call, Endpoint, Handler, Located, NotFound, listing, to
from infra.runtime.host import Runtime
from services.projection.adapters.read_models import PgReadModels
from services.projection.domain.deidentify import deidentified
from services.projection.domain.report import programme_report
from services.projection.domain.subject_view import SubjectView
from services.projection.entrypoints.consumer import rebuild as rebuild_projection


def shown(call: Call, view: dict[str, Any]) -> dict[str, Any]:
    """The view as this caller may see it."""
    if call.may(Action.READ_IDENTIFIERS, Resource(centre_id=view["centre_id"])):
        return {**view, "identifiers_removed": False}
    return deidentified(view)


async def subject_of(request: Request, rt: Runtime) -> Located:
    subject_id = request.path_params["subject_id"]
    async with rt.pool.acquire() as conn:
        view = await PgReadModels(conn).get(subject_id)
    if view is None:
        raise NotFound(f"no subject {subject_id}")
    return Located(Resource(centre_id=view.centre_id), view)


def subject(rt: Runtime) -> Handler:
    async def handle(call: Call) -> JSONResponse:
        return JSONResponse(shown(call, call.located.found.to_json()))
    return handle


def subjects(rt: Runtime) -> Handler:
    async def handle(call: Call) -> JSONResponse:
        async with rt.pool.acquire() as conn:
            views = await PgReadModels(conn).all_views()
        return JSONResponse([shown(call, v) for v in views
                             if call.may(Action.READ_SUBJECT, Resource(centre_id=v["centre_id"]))])
    return handle


CONF_TYPES = ("log-log", "log", "plain")  # services/clinical/survival.py: R survfit's conf.type


def report(rt: Runtime) -> Handler:
    async def handle(call: Call) -> JSONResponse:
        conf_type = call.request.query_params.get("ci", "log-log")
        if conf_type not in CONF_TYPES:
            return JSONResponse({"error": f"ci={conf_type[:40]!r}: the survival interval is one of "
                                          f"{', '.join(CONF_TYPES)} (log: R's default)", "code": "INVALID_QUERY"},
                                status_code=422)
        async with rt.pool.acquire() as conn:
            rows = await PgReadModels(conn).programme_rows(call.request.query_params.get("programme"))
        return JSONResponse(programme_report([r for r in rows
                                              if call.may(Action.READ_REPORT, Resource(centre_id=r.centre_id))],
                                             conf_type))
    return handle


# GET /units answers these fields of each unit (SubjectView.unit_json) and filters on the
# boolean ones (`?name=true|false`)
UNIT_FIELDS = ("state", "holder", "since", "quarantined", "release", "out_of_specification", "failed",
               "released_out_of_specification", "awaiting_release", "awaiting_release_signature", "expires_at",
               "use_within_minutes", "tested_at", "specification_version", "certified_at")
UNIT_FLAGS = ("quarantined", "out_of_specification", "released_out_of_specification", "awaiting_release",
              "awaiting_release_signature")


def unit_wanted(item: dict[str, Any], q: Any) -> bool:
    """`item` passes the query's filters: `state`, `holder`, and each of UNIT_FLAGS."""
    return (q.get("state") in (None, item["state"]) and q.get("holder") in (None, item["holder"])
            and all(q.get(flag) in (None, str(item[flag]).lower()) for flag in UNIT_FLAGS))


def units(rt: Runtime) -> Handler:
    """Where every unit is, across subjects (issue 9 items 4 and 8): each one the caller may
    read as a product (its subject's centre; the facility that made it), with its quality and
    where its release stands; `?awaiting_release=true` lists the units QC complete (or out of
    specification and accepted by the physician) and not yet released, among them
    `?awaiting_release_signature=true` those whose release record awaits the qualified
    person's signature; `?released_out_of_specification=true` those released on the
    exceptional-release path; `?state=`, `?quarantined=true` the open quarantines, `?holder=`
    one organisation's. Pseudonymous subject ids only."""
    async def handle(call: Call) -> JSONResponse:
        q = call.request.query_params
        async with rt.pool.acquire() as conn:
            # each view read back as a SubjectView, so a view stored before a field was
            # derived (a release's status, issue 9 item 4) answers it too
            views = [SubjectView.from_json(v) for v in await PgReadModels(conn).all_views()]
        found = []
        for v in views:
            facilities = {p.coi_id: p.facility_id for p in v.products}
            for unit in v.units:
                u, coi = v.unit_json(unit), unit.unit_id[:14]
                item = {"unit_id": u["unit_id"], "coi_id": coi, "subject_id": v.subject_id,
                        "centre_id": v.centre_id, "facility_id": facilities.get(coi),
                        **{k: u[k] for k in UNIT_FIELDS}}
                if not unit_wanted(item, q):
                    continue
                if call.may(Action.READ_PRODUCT, Resource(centre_id=item["centre_id"], facility_id=item["facility_id"])):
                    found.append(item)
        return JSONResponse(found)
    return handle


def rebuild(rt: Runtime) -> Handler:
    async def handle(call: Call) -> JSONResponse:
        dropped = await rebuild_projection(rt.consumer)
        return JSONResponse({"rebuilding": True, "dropped_views": dropped}, status_code=202)
    return handle


ENDPOINTS = (
    Endpoint("GET", "/subjects", listing(Action.READ_SUBJECT), subjects,
             "Every subject the caller may read, identifiers removed unless it may read them"),
    Endpoint("GET", "/subjects/{subject_id}", to(Action.READ_SUBJECT, subject_of), subject,
             "One subject's phase, timeline and products, identifiers removed unless the caller may read them",
             answers={200: "the subject's view", 404: "no such subject"}),
    Endpoint("GET", "/units", listing(Action.READ_PRODUCT), units,
             "Where every unit the caller may read is: state, holder, since when, quarantined, its QC results "
             "(out of specification, failed attributes, expiry) and where its release stands (query: state, holder, "
             "quarantined, awaiting_release, awaiting_release_signature, out_of_specification, "
             "released_out_of_specification: true|false)"),
    Endpoint("GET", "/report", listing(Action.READ_REPORT), report,
             "Day-28 ORR (exact 95 % CI), vein-to-vein time, each leg of the path, infusions of out-of-specification "
             "units and open sponsor notifications, the dose escalation, CRS and ICANS, the course after infusion "
             "and OS, EFS, TTP and DOR (Kaplan-Meier) per programme, over the subjects of the centres the caller may "
             "report on (query: programme; ci: the survival interval, log-log, log (R's default) or plain)"),
    Endpoint("POST", "/admin/rebuild", to(Action.ADMIN_REBUILD), rebuild,
             "Drop the read models and replay the topics from the start",
             answers={202: "rebuilding"}),
)
