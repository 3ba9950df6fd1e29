"""The daily report (per site, the 24 h ending at the report cutoff) and its CSV files."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from fpverify.server.dashboard import auth
from fpverify.server.dashboard import queries as q
from fpverify.server.dashboard.auth import Refused, Viewer
from fpverify.server.dashboard.routes import common
from fpverify.server.dashboard.routes.common import ViewerDep, render
from fpverify.server.models import utcnow

router = APIRouter()


def _report_date(request: Request, day: str | None) -> date:
    ds = common.dsettings(request)
    if not day:
        return q.due_report_date(utcnow(), ds.tz, ds.report_cutoff)
    try:
        return date.fromisoformat(day)
    except ValueError:
        raise Refused(422, f"date: {day[:20]!r} is not YYYY-MM-DD") from None


def _report_data(request: Request, v: Viewer, d: date, for_csv: bool = False):
    """The report's rows and findings. Everything "as of" is as of the period's end (or now, while
    the period runs): a past report shows its day as it was."""
    ds = common.dsettings(request)
    sp = common.speaker(request)
    start, end = q.report_period(d, ds.tz, ds.report_cutoff)
    as_of = min(end, utcnow())
    with common.session(request) as s:
        rows = q.daily_report(s, start, end, as_of)
        findings_alerts, overdue, names = [], [], {}
        if v.personal:
            findings_alerts = q.report_alerts(s, start, end)
            overdue = q.overdue_bedside(s, as_of)
            names = q.holder_names(s, {a.card_number for a in findings_alerts if a.card_number}
                                   | {o.stay.card_number for o in overdue})
        sites, devices = common.named(s)
    when = (lambda dt: common.iso_local(request, dt)) if for_csv else (lambda dt: common.local(request, dt))
    yes_no = {True: sp._("yes"), False: sp._("no")}
    findings = [{"kind": sp._("no match alert"), "site": sites.get(a.site_id or "", a.site_id or ""),
                 "at": when(a.raised_at), "card": a.card_number or "", "name": names.get(a.card_number or "", ""),
                 "device": devices.get(a.device_id or "", a.device_id or ""),
                 "detail": sp._("card retained: {yes_no}; alert {status}", yes_no=yes_no[bool(a.card_retained)],
                                status=sp.word("status", _status_at(a, as_of)))}
                for a in findings_alerts]
    findings += [{"kind": sp._("bedside check overdue"), "site": sites.get(o.stay.site_id, o.stay.site_id),
                  "at": when(o.due_at), "card": o.stay.card_number, "name": names.get(o.stay.card_number, ""),
                  "device": "", "detail": sp._("ward {w} bed {b}; {h} h overdue", w=o.stay.ward or "-",
                                               b=o.stay.bed or "-", h=sp.num(o.hours_overdue, 1))}
                 for o in overdue]
    return start, end, as_of, rows, findings


def _status_at(a, at) -> str:
    """An alert's state at a past moment (its acknowledgement and resolution times)."""
    if a.resolved_at is not None and a.resolved_at < at:
        return "resolved"
    if a.acknowledged_at is not None and a.acknowledged_at < at:
        return "acknowledged"
    return "open"


@router.get("/dashboard/report", response_class=HTMLResponse)
def report(request: Request, v: ViewerDep, day: str | None = Query(default=None, alias="date", max_length=20)):
    d = _report_date(request, day)
    start, end, as_of, rows, findings = _report_data(request, v, d)
    totals = {k: sum(r[k] for r in rows) for k, _ in q.REPORT_COLUMNS
              if k not in ("site_id", "site_name", "failure_rate")}
    return render(request, "report.html", v, day=d, start=common.local(request, start, False), end=common.local(request, end, False),
                  as_of=common.local(request, as_of, False), rows=rows, totals=totals, columns=q.REPORT_COLUMNS[1:],
                  outcomes=q.OUTCOMES, findings=findings, prev=d - timedelta(days=1), next=d + timedelta(days=1),
                  generated=common.local(request, utcnow()), cutoff=common.dsettings(request).report_cutoff.strftime("%H:%M"))


@router.get("/dashboard/report.csv")
def report_csv(request: Request, v: ViewerDep, day: str | None = Query(default=None, alias="date", max_length=20)):
    d = _report_date(request, day)
    _, _, _, rows, _ = _report_data(request, v, d, for_csv=True)
    cols = [k for k, _ in q.REPORT_COLUMNS]
    return common.csv_response(f"fpverify-daily-report-{d.isoformat()}.csv", cols, rows,
                        header=[label for _, label in q.REPORT_COLUMNS])


@router.get("/dashboard/report-findings.csv")
def report_findings_csv(request: Request, v: ViewerDep,
                        day: str | None = Query(default=None, alias="date", max_length=20)):
    auth.require_personal(v)
    d = _report_date(request, day)
    _, _, _, _, findings = _report_data(request, v, d, for_csv=True)
    cols = ["kind", "site", "at", "card", "name", "device", "detail"]
    return common.csv_response(f"fpverify-daily-findings-{d.isoformat()}.csv", cols, findings)
