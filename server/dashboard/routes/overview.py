"""The overview: today's counts, the trend chart, tallies by site and device, the stations."""

from __future__ import annotations

import json
from datetime import timedelta

from babel.dates import format_date
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from fpverify.server.dashboard import queries as q
from fpverify.server.dashboard.routes import common
from fpverify.server.dashboard.routes.common import ViewerDep, render
from fpverify.server.ingest import feed
from fpverify.server.models import utcnow

router = APIRouter()


@router.get("/dashboard/", response_class=HTMLResponse)
def overview(request: Request, v: ViewerDep, days: int = Query(default=1, ge=1, le=92)):
    ds = common.dsettings(request)
    now = utcnow()
    today = now.astimezone(ds.tz).date()
    since = q.local_midnight(today - timedelta(days=days - 1), ds.tz)
    until = q.local_midnight(today + timedelta(days=1), ds.tz)
    with common.session(request) as s:
        trend = q.per_day(s, ds.trend_days, today, ds.tz)
        today_counts = trend[-1][1]
        by_site = q.tallies_by(s, "site_id", since, until)
        by_device = q.tallies_by(s, "device_id", since, until)
        stations = q.stations(s)
        feed_version = feed.current_version(s)
        alert_counts = q.alert_counts(s)
        sites, devices = common.named(s)
    sp = common.speaker(request)
    chart = {  # app.js draws it; every label comes translated from here
        "labels": [format_date(d, "MMMd", locale=sp.locale) for d, _ in trend],
        "outcomes": [{"outcome": sp.word("outcome", o), "colour": common.OUTCOME_COLOURS[o],
                      "data": [c.get(o, 0) for _, c in trend]} for o in q.OUTCOMES],
        "text": {"rate": sp._("failure rate %"), "count": sp._("verifications")},
        "locale": sp.lang.replace("_", "-"),
        "failure_rate": [round(100 * sum(c.get(o, 0) for o in q.FAILURES) / sum(c.values()), 1)
                         if sum(c.values()) else None for _, c in trend],
    }
    total_today = sum(today_counts.values())
    failures_today = sum(today_counts.get(o, 0) for o in q.FAILURES)
    station_rows = [{
        "id": d.id, "site": d.site_id, "site_name": site.name if site else d.site_id, "name": d.name or "",
        "online": d.online and not d.disabled, "disabled": d.disabled, "last_seen": common.local(request, d.last_seen),
        "cache_version": d.cache_version, "software": d.software_version or "",
    } for d, site in stations]
    return render(request, "overview.html", v, today=today, days=days, total_today=total_today,
                  failures_today=failures_today, today_counts=today_counts, outcomes=q.OUTCOMES,
                  failure_rate_today=(failures_today / total_today) if total_today else None,
                  by_site=by_site, by_device=by_device, stations=station_rows, feed_version=feed_version,
                  online=sum(1 for r in station_rows if r["online"]), alert_counts=alert_counts,
                  chart_json=json.dumps(chart, ensure_ascii=True), chart_days=ds.trend_days, site_names=sites,
                  device_names=devices)
