"""`celltrail report --plots DIR` (issue 11 item 6): what people would rather look at than read,
as SVG written by hand (no plotting library): each programme's Kaplan-Meier curves with their
pointwise confidence band and the numbers at risk beneath, and a swimmer plot of each
subject's course (infusions, CRS and ICANS episodes, responses, relapse, death, last contact).

Reads only what the projection reports (`GET /report`, `GET /subjects`): subjects appear by
their pseudonym, or as the projection showed them to the caller."""

from __future__ import annotations

from html import escape
from pathlib import Path

WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 30, 40, 110  # margins; the numbers at risk go under the axis
ENDPOINTS = ("overall_survival", "event_free_survival", "time_to_progression", "duration_of_response")
DAYS_PER_MONTH = 30.4375  # services/clinical/time_to_event.py


def _svg(body: list[str], width: int = WIDTH, height: int = HEIGHT) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">\n'
            + "\n".join(body) + "\n</svg>\n")


def kaplan_meier_svg(programme: str, endpoint: str, km: dict) -> str:
    """One endpoint's step curve from 1 at time 0, its band, censoring implied by the numbers at
    risk, the median with its interval in the title."""
    span = max(km.get("max_follow_up_months") or 0.0, 1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + plot_w * t / span

    def y(s: float) -> float:
        return TOP + plot_h * (1.0 - s)

    def steps(values: list[tuple[float, float]]) -> str:
        points, last = [f"{x(0):.1f},{y(1):.1f}"], 1.0
        for t, s in values:
            points += [f"{x(t):.1f},{y(last):.1f}", f"{x(t):.1f},{y(s):.1f}"]
            last = s
        points.append(f"{x(span):.1f},{y(last):.1f}")
        return " ".join(points)

    curve = km.get("curve") or []
    lower = [(r["time"], r["lower"]) for r in curve if r["lower"] is not None]
    upper = [(r["time"], r["upper"]) for r in curve if r["upper"] is not None]
    median = "not reached" if km.get("median_months") is None else f"{km['median_months']:.1f} months"
    body = [f'<text x="{LEFT}" y="20" font-size="14">{escape(programme)}: {endpoint.replace("_", " ")}, '
            f'median {median} ({km["events"]} events in {km["n"]})</text>',
            f'<line x1="{LEFT}" y1="{y(0)}" x2="{x(span)}" y2="{y(0)}" stroke="black"/>',
            f'<line x1="{LEFT}" y1="{y(0)}" x2="{LEFT}" y2="{y(1)}" stroke="black"/>']
    for s in (0.0, 0.25, 0.5, 0.75, 1.0):
        body.append(f'<text x="{LEFT - 8}" y="{y(s) + 4:.1f}" text-anchor="end">{s:.2f}</text>')
    if lower and upper:
        band = steps(upper).split() + list(reversed(steps(lower).split()))
        body.append(f'<polygon class="band" points="{" ".join(band)}" fill="#9ecae1" fill-opacity="0.4" stroke="none"/>')
    body.append(f'<polyline class="curve" points="{steps([(r["time"], r["survival"]) for r in curve])}" '
                f'fill="none" stroke="#08519c" stroke-width="2"/>')
    body.append(f'<text x="{LEFT}" y="{y(0) + 40}">Number at risk</text>')
    for r in km.get("at_risk") or []:
        if r["time"] <= span:
            body.append(f'<text x="{x(r["time"]):.1f}" y="{y(0) + 18}" text-anchor="middle">{r["time"]:g}</text>')
            body.append(f'<text class="at-risk" x="{x(r["time"]):.1f}" y="{y(0) + 58}" '
                        f'text-anchor="middle">{r["n"]}</text>')
    body.append(f'<text x="{x(span / 2):.1f}" y="{HEIGHT - 20}" text-anchor="middle">months since infusion</text>')
    return _svg(body)


def swimmer_svg(programme: str, views: list[dict]) -> str:
    """A lane per infused subject from its first infusion to its death or last known date, with
    each infusion, CRS and ICANS episode, complete remission, relapse and death marked."""
    lanes = []
    for v in views:  # the course in days from the first infusion: shown also where dates are cut to the year
        course = v.get("course_days")
        if not course:
            continue
        days = [*course["infusions"], *(r[0] for r in course["responses"]), course["died"], course["last_contact"]]
        lanes.append((v["subject_id"], course["infusions"], max([d for d in days if d is not None] + [1]), v))
    span = max([lane[2] for lane in lanes] + [30]) / DAYS_PER_MONTH
    height = TOP + 28 * len(lanes) + 80
    plot_w = WIDTH - 160 - RIGHT

    def x(days: float) -> float:
        return 160 + plot_w * (days / DAYS_PER_MONTH) / span

    body = [f'<text x="{LEFT}" y="20" font-size="14">{escape(programme)}: each subject\'s course '
            '(months since the first infusion)</text>']
    for i, (subject, infusions, end, v) in enumerate(lanes):
        y = TOP + 28 * i
        body.append(f'<text x="150" y="{y + 14}" text-anchor="end">{escape(subject)}</text>')
        body.append(f'<rect class="lane" x="{x(0):.1f}" y="{y + 4}" width="{x(end) - x(0):.1f}" height="12" '
                    f'fill="#d9d9d9"/>')
        for kind, colour in (("crs", "#fd8d3c"), ("icans", "#6a51a3")):
            for e in v.get(f"{kind}_episodes", []):
                stop = e["resolution_day"] if e["resolution_day"] is not None else end
                body.append(f'<rect class="{kind}" x="{x(e["onset_day"]):.1f}" y="{y + 4}" '
                            f'width="{max(x(stop) - x(e["onset_day"]), 2):.1f}" height="12" fill="{colour}">'
                            f'<title>{kind.upper()} grade {e["max_grade"]}</title></rect>')
        for d in infusions:
            body.append(f'<path class="infusion" d="M{x(d):.1f},{y + 2} l5,8 l-10,0 z" fill="black"/>')
        for d, category, mrd in v["course_days"]["responses"]:
            if category in ("complete_remission", "complete_remission_incomplete_count_recovery"):
                fill = "#31a354" if mrd == "negative" else "#a1d99b"
                body.append(f'<circle class="remission" cx="{x(d):.1f}" cy="{y + 10}" r="4" fill="{fill}"/>')
            elif category and "relapse" in category:
                body.append(f'<text class="relapse" x="{x(d):.1f}" y="{y + 14}" text-anchor="middle" '
                            f'fill="#de2d26">x</text>')
        if v["course_days"]["died"] is not None:
            body.append(f'<rect class="death" x="{x(end) - 4:.1f}" y="{y + 6}" width="8" height="8" fill="black"/>')
        elif v["course_days"]["last_contact"] is not None:
            body.append(f'<path class="alive" d="M{x(end):.1f},{y + 4} l8,6 l-8,6 z" fill="#31a354"/>')
    legend_y = TOP + 28 * len(lanes) + 30
    body.append(f'<text x="160" y="{legend_y}">triangle: infusion; orange: CRS; purple: ICANS; green dot: complete '
                'remission (dark: MRD negative); x: relapse; square: death; arrow: alive at last contact</text>')
    return _svg(body, height=height)


def write_plots(directory: Path, report: list[dict], views: list[dict]) -> list[Path]:
    """Every programme's curves and swimmer plot under `directory`; the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for p in report:
        programme = p["programme_id"]
        for endpoint in ENDPOINTS:
            km = (p.get("survival") or {}).get(endpoint)
            if km and km.get("n"):
                path = directory / f"{programme}-{endpoint}.svg"
                path.write_text(kaplan_meier_svg(programme, endpoint, km), encoding="utf-8")
                written.append(path)
        mine = [v for v in views if v.get("programme_id") == programme]
        if any(v.get("course_days") for v in mine):
            path = directory / f"{programme}-swimmer.svg"
            path.write_text(swimmer_svg(programme, mine), encoding="utf-8")
            written.append(path)
    return written
