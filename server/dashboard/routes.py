"""Dashboard pages (server-rendered Jinja2). Reads use server.dashboard.queries; the only writes,
alert acknowledgement and resolution, go through server.crud.results, which audit-logs them."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from fpverify.server.crud import results as results_crud
from fpverify.server.crud import users as users_crud
from fpverify.server.crud.errors import DomainError
from fpverify.server.dashboard import auth
from fpverify.server.dashboard import queries as q
from fpverify.server.dashboard.auth import Refused, Viewer
from fpverify.server.dashboard.settings import DashboardSettings, get_dashboard_settings
from fpverify.server.ingest import feed
from fpverify.server.models import AlertStatus, utcnow

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)

ViewerDep = Annotated[Viewer, Depends(auth.viewer)]
OUTCOME_COLOURS = {"match": "#2e7d32", "delegate_match": "#66bb6a", "no_match": "#c62828",
                   "poor_quality": "#f9a825", "not_enrolled": "#6d4c41", "card_blocked": "#8e24aa",
                   "sensor_error": "#546e7a"}
FINGERS = {0: "unknown", 1: "right thumb", 2: "right index", 3: "right middle", 4: "right ring", 5: "right little",
           6: "left thumb", 7: "left index", 8: "left middle", 9: "left ring", 10: "left little"}


def dsettings(request: Request) -> DashboardSettings:
    return getattr(request.app.state, "dashboard_settings", None) or get_dashboard_settings()


def _session(request: Request):
    return request.app.state.db.sessionmaker()


def _local(request: Request, dt: datetime | None, seconds: bool = True) -> str:
    if dt is None:
        return ""
    return dt.astimezone(dsettings(request).tz).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def render(request: Request, name: str, v: Viewer | None, status_code: int = 200, **ctx) -> HTMLResponse:
    ds = dsettings(request)
    ctx.update(viewer=v, tzname=ds.timezone, refresh_s=ds.refresh_s, page_name=name.removesuffix(".html"),
               local=lambda dt, seconds=True: _local(request, dt, seconds), colours=OUTCOME_COLOURS)
    resp = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    resp.headers["Cache-Control"] = "no-store"  # pages hold personal data
    return resp


def _parse_local(request: Request, text: str | None, field: str, errors: list[str]) -> datetime | None:
    """A datetime-local or date input, read in the dashboard's time zone."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text) if "T" in text or " " in text else datetime.fromisoformat(text + "T00:00")
    except ValueError:
        errors.append(f"{field}: not a date/time ({text[:40]!r}); use YYYY-MM-DDTHH:MM")
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dsettings(request).tz)
    return value.astimezone(UTC)


def _result_rows(request: Request, s, v: Viewer, records) -> list[dict]:
    names = q.holder_names(s, {r.card_number for r in records}) if v.personal else {}
    dnames = q.delegate_names(s, {r.delegate_id for r in records if r.delegate_id}) if v.personal else {}
    rows = []
    for r in records:
        rows.append({
            "at": _local(request, r.captured_at), "site": r.site_id, "device": r.device_id,
            "card": v.card(r.card_number), "card_url": _card_url(r.card_number) if v.personal else None,
            "name": names.get(r.card_number, "") if v.personal else "",
            "outcome": r.outcome, "purpose": r.purpose,
            "score": "" if r.score is None else f"{r.score:.3f}",
            "threshold": "" if r.threshold is None else f"{r.threshold:.3f}",
            "quality": "" if r.quality is None else r.quality, "attempts": r.attempts,
            "detail": r.detail or "", "operator": r.operator_id or "" if v.personal else "",
            "delegate": dnames.get(r.delegate_id or "", r.delegate_id or "") if v.personal else
            ("yes" if r.delegate_id else ""),
        })
    return rows


def _card_url(card: str) -> str:
    return f"/dashboard/cards/{quote(card, safe='')}"


# ---- login / logout -----------------------------------------------------------------------------

def _safe_next(target: str | None) -> str:
    if target and target.startswith("/dashboard") and not target.startswith("//") and "\\" not in target:
        return target
    return "/dashboard/"


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard/", status_code=303)


@router.get("/dashboard/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = Query(default=None, max_length=500)):
    token = auth.new_login_csrf()
    resp = render(request, "login.html", None, csrf=token, next=_safe_next(next), error=None)
    resp.set_cookie(auth.LOGIN_COOKIE, token, **auth.cookie_kwargs(request, 3600))
    return resp


@router.post("/dashboard/login", response_class=HTMLResponse)
async def login_submit(request: Request, username: str = Form("", max_length=64),
                       password: str = Form("", max_length=1024), csrf_token: str = Form("", max_length=200),
                       next: str = Form("/dashboard/", max_length=500)):
    auth.check_origin(request)
    expected = request.cookies.get(auth.LOGIN_COOKIE)
    if not expected or not csrf_token or not auth.hmac.compare_digest(expected, csrf_token):
        raise Refused(403, "the login form expired or was not sent from this site; reload the login page")
    app = request.app

    def work() -> tuple[str | None, str | None]:
        with app.state.db.sessionmaker() as s:
            try:
                user = users_crud.authenticate(s, app.state.settings, username, password)
            except users_crud.LoginFailed as exc:
                return None, str(exc)
            token = users_crud.issue_token(s, user, app.state.settings.token_ttl_minutes)
            s.commit()
            return token, None

    token, error = (None, "enter a user name and a password") if not username or not password else \
        await run_in_threadpool(work)
    if token is None:
        fresh = auth.new_login_csrf()
        resp = render(request, "login.html", None, status_code=401, csrf=fresh, next=_safe_next(next), error=error)
        resp.set_cookie(auth.LOGIN_COOKIE, fresh, **auth.cookie_kwargs(request, 3600))
        return resp
    resp = RedirectResponse(_safe_next(next), status_code=303)
    resp.set_cookie(auth.COOKIE, token, **auth.cookie_kwargs(request, app.state.settings.token_ttl_minutes * 60))
    resp.delete_cookie(auth.LOGIN_COOKIE, path=auth.PATH)
    return resp


@router.post("/dashboard/logout")
def logout(request: Request, v: ViewerDep, csrf_token: str = Form("", max_length=200)):
    auth.check_csrf(request, v, csrf_token)
    with _session(request) as s:
        users_crud.revoke_token(s, v.token)
        s.commit()
    resp = RedirectResponse("/dashboard/login", status_code=303)
    resp.delete_cookie(auth.COOKIE, path=auth.PATH)
    return resp


# ---- overview -----------------------------------------------------------------------------------

@router.get("/dashboard/", response_class=HTMLResponse)
def overview(request: Request, v: ViewerDep, days: int = Query(default=1, ge=1, le=92)):
    ds = dsettings(request)
    now = utcnow()
    today = now.astimezone(ds.tz).date()
    since = q.local_midnight(today - timedelta(days=days - 1), ds.tz)
    until = q.local_midnight(today + timedelta(days=1), ds.tz)
    with _session(request) as s:
        trend = q.per_day(s, ds.trend_days, today, ds.tz)
        today_counts = trend[-1][1]
        by_site = q.tallies_by(s, "site_id", since, until)
        by_device = q.tallies_by(s, "device_id", since, until)
        stations = q.stations(s)
        feed_version = feed.current_version(s)
        alert_counts = q.alert_counts(s)
    chart = {
        "labels": [d.isoformat() for d, _ in trend],
        "outcomes": [{"outcome": o, "colour": OUTCOME_COLOURS[o], "data": [c.get(o, 0) for _, c in trend]}
                     for o in q.OUTCOMES],
        "failure_rate": [round(100 * sum(c.get(o, 0) for o in q.FAILURES) / sum(c.values()), 1)
                         if sum(c.values()) else None for _, c in trend],
    }
    total_today = sum(today_counts.values())
    failures_today = sum(today_counts.get(o, 0) for o in q.FAILURES)
    station_rows = [{
        "id": d.id, "site": d.site_id, "site_name": site.name if site else d.site_id, "name": d.name or "",
        "online": d.online and not d.disabled, "disabled": d.disabled, "last_seen": _local(request, d.last_seen),
        "cache_version": d.cache_version, "software": d.software_version or "",
    } for d, site in stations]
    return render(request, "overview.html", v, today=today, days=days, total_today=total_today,
                  failures_today=failures_today, today_counts=today_counts, outcomes=q.OUTCOMES,
                  failure_rate_today=(failures_today / total_today) if total_today else None,
                  by_site=by_site, by_device=by_device, stations=station_rows, feed_version=feed_version,
                  online=sum(1 for r in station_rows if r["online"]), alert_counts=alert_counts,
                  chart_json=json.dumps(chart), chart_days=ds.trend_days)


# ---- failures -----------------------------------------------------------------------------------

@router.get("/dashboard/failures", response_class=HTMLResponse)
def failures(request: Request, v: ViewerDep,
             site: str | None = Query(default=None, max_length=64), device: str | None = Query(default=None, max_length=64),
             outcome: str = Query(default="failures", max_length=20), card: str | None = Query(default=None, max_length=32),
             since: str | None = Query(default=None, max_length=40), until: str | None = Query(default=None, max_length=40),
             purpose: str | None = Query(default=None, max_length=20), offset: int = Query(default=0, ge=0)):
    ds = dsettings(request)
    errors: list[str] = []
    if outcome not in ("failures", "any", *q.OUTCOMES):
        errors.append(f"outcome: unknown value {outcome[:20]!r}")
        outcome = "failures"
    if card and not v.personal:
        errors.append("card: your role may not search by card number")
        card = None
    f = q.ResultFilter(site_id=site or None, device_id=device or None, outcome=outcome, card_number=card or None,
                       since=_parse_local(request, since, "from", errors),
                       until=_parse_local(request, until, "until", errors), purpose=purpose or None)
    with _session(request) as s:
        records, total = q.results_page(s, f, ds.page_size, offset)
        rows = _result_rows(request, s, v, records)
        sites = sorted(q.site_names(s))
        devices = q.device_ids(s)
    params = {k: val for k, val in {"site": site, "device": device, "outcome": outcome, "card": card, "since": since,
                                     "until": until, "purpose": purpose}.items() if val}
    page = {"offset": offset, "size": ds.page_size, "total": total,
            "prev": f"?{urlencode(params | {'offset': max(0, offset - ds.page_size)})}" if offset > 0 else None,
            "next": f"?{urlencode(params | {'offset': offset + ds.page_size})}"
            if offset + ds.page_size < total else None}
    csv_url = f"/dashboard/failures.csv?{urlencode(params)}"
    return render(request, "failures.html", v, rows=rows, total=total, errors=errors, sites=sites, devices=devices,
                  outcomes=q.OUTCOMES, purposes=("registration", "admission", "billing", "pharmacy", "bedside"),
                  f={"site": site or "", "device": device or "", "outcome": outcome, "card": card or "",
                     "since": since or "", "until": until or "", "purpose": purpose or ""}, page=page, csv_url=csv_url)


@router.get("/dashboard/failures.csv")
def failures_csv(request: Request, v: ViewerDep,
                 site: str | None = Query(default=None, max_length=64), device: str | None = Query(default=None, max_length=64),
                 outcome: str = Query(default="failures", max_length=20),
                 card: str | None = Query(default=None, max_length=32),
                 since: str | None = Query(default=None, max_length=40), until: str | None = Query(default=None, max_length=40),
                 purpose: str | None = Query(default=None, max_length=20)):
    errors: list[str] = []
    if outcome not in ("failures", "any", *q.OUTCOMES):
        raise Refused(422, f"unknown outcome {outcome[:20]!r}")
    if card and not v.personal:
        raise Refused(403, "your role may not search by card number")
    f = q.ResultFilter(site_id=site or None, device_id=device or None, outcome=outcome, card_number=card or None,
                       since=_parse_local(request, since, "from", errors),
                       until=_parse_local(request, until, "until", errors), purpose=purpose or None)
    if errors:
        raise Refused(422, "; ".join(errors))
    with _session(request) as s:
        records, _ = q.results_page(s, f, 100000)
        rows = _result_rows(request, s, v, records)
    cols = ["at", "site", "device", "card", *(["name"] if v.personal else []), "outcome", "purpose", "score",
            "threshold", "quality", "attempts", "delegate", "detail"]
    return _csv_response("verifications.csv", cols, rows)


def _csv_response(filename: str, cols: list[str], rows: list[dict], header: list[str] | None = None) -> Response:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header or cols)
    for r in rows:
        w.writerow([_csv_cell(r.get(c, "")) for c in cols])
    # BOM: spreadsheet programs on Chinese Windows then read UTF-8 names correctly
    return Response("\ufeff" + buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


def _csv_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _is_number(text) else text  # formula injection


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


# ---- card holder --------------------------------------------------------------------------------

@router.get("/dashboard/cards/{card_number}", response_class=HTMLResponse)
def card_page(request: Request, card_number: str, v: ViewerDep):
    auth.require_personal(v)
    with _session(request) as s:
        cv = q.card_view(s, card_number)
        if cv is None:
            raise Refused(404, "no card holder with this card number")
        history = _result_rows(request, s, v, cv.history)
        dnames = {d.id: d.name for d in cv.delegates}
    templates_rows = [{"finger": FINGERS.get(t.finger, str(t.finger)), "role": t.role,
                       "delegate": dnames.get(t.delegate_id or "", ""), "quality": t.quality, "status": t.status,
                       "enrolled_at": _local(request, t.enrolled_at), "device": t.device_id, "site": t.site_id or "",
                       "by": t.enrolled_by, "revoked": t.revoked_reason or ""} for t in cv.templates]
    now = utcnow()
    delegates = [{"name": d.name, "relation": d.relation or "", "from": _local(request, d.valid_from, False),
                  "until": _local(request, d.valid_until, False), "valid": d.valid_from <= now < d.valid_until}
                 for d in cv.delegates]
    return render(request, "card.html", v, h=cv.holder, consents=cv.consents, templates_rows=templates_rows,
                  delegates=delegates, history=history, history_total=cv.history_total, alerts=cv.alerts,
                  stays=cv.stays)


# ---- alerts -------------------------------------------------------------------------------------

@router.get("/dashboard/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, v: ViewerDep, status: str | None = Query(default="active", max_length=20),
                site: str | None = Query(default=None, max_length=64), msg: str | None = Query(default=None, max_length=200)):
    statuses = {"active": None, "all": None, **{s.value: s.value for s in AlertStatus}}
    if status not in statuses:
        status = "active"
    with _session(request) as s:
        rows = q.alerts(s, statuses[status], site or None, 500)
        if status == "active":
            rows = [a for a in rows if a.status != AlertStatus.RESOLVED]
        names = q.holder_names(s, {a.card_number for a in rows if a.card_number}) if v.personal else {}
        counts = q.alert_counts(s)
        sites = sorted(q.site_names(s))
    view = [{"id": a.id, "kind": a.kind, "raised": _local(request, a.raised_at), "site": a.site_id or "",
             "device": a.device_id or "", "card": v.card(a.card_number),
             "card_url": _card_url(a.card_number) if v.personal and a.card_number else None,
             "name": names.get(a.card_number or "", "") if v.personal else "", "retained": a.card_retained,
             "status": a.status, "ack": f"{a.acknowledged_by} {_local(request, a.acknowledged_at, False)}"
             if a.acknowledged_by else "", "resolved": f"{a.resolved_by} {_local(request, a.resolved_at, False)}"
             if a.resolved_by else "", "comment": (a.comment or "") if v.personal else ("(comment)" if a.comment else "")}
            for a in rows]
    return render(request, "alerts.html", v, rows=view, status=status, site=site or "", sites=sites, counts=counts,
                  msg=msg)


def _alert_action(request: Request, v: Viewer, alert_id: int, csrf_token: str, comment: str, resolve: bool):
    auth.check_csrf(request, v, csrf_token)
    auth.require_act(v)
    comment = comment.strip()
    if resolve and not comment:
        return RedirectResponse(f"/dashboard/alerts?msg={quote('a resolution needs a comment')}", status_code=303)
    with _session(request) as s:
        try:
            if resolve:
                results_crud.resolve_alert(s, v.username, alert_id, comment)
            else:
                results_crud.acknowledge_alert(s, v.username, alert_id, comment or None)
            s.commit()
        except DomainError as exc:
            s.rollback()
            return RedirectResponse(f"/dashboard/alerts?msg={quote(str(exc)[:150])}", status_code=303)
    done = "resolved" if resolve else "acknowledged"
    return RedirectResponse(f"/dashboard/alerts?msg={quote(f'alert {alert_id} {done}')}", status_code=303)


@router.post("/dashboard/alerts/{alert_id}/acknowledge")
def acknowledge(request: Request, alert_id: int, v: ViewerDep, csrf_token: str = Form("", max_length=200),
                comment: str = Form("", max_length=2000)):
    return _alert_action(request, v, alert_id, csrf_token, comment, resolve=False)


@router.post("/dashboard/alerts/{alert_id}/resolve")
def resolve(request: Request, alert_id: int, v: ViewerDep, csrf_token: str = Form("", max_length=200),
            comment: str = Form("", max_length=2000)):
    return _alert_action(request, v, alert_id, csrf_token, comment, resolve=True)


# ---- suspicion points ---------------------------------------------------------------------------

@router.get("/dashboard/suspicion", response_class=HTMLResponse)
def suspicion(request: Request, v: ViewerDep):
    ds = dsettings(request)
    now = utcnow()
    since = now - timedelta(days=ds.lookback_days)
    with _session(request) as s:
        devices = q.poor_quality_devices(s, now - timedelta(hours=24), ds.poor_quality_min, ds.poor_quality_rate)
        travel, repeats, overdue, names = [], [], [], {}
        if v.personal:
            travel = q.impossible_travel(s, since, ds.travel_minutes)
            repeats = q.repeated_no_match(s, since, ds.repeat_no_match)
            overdue = q.overdue_bedside(s, now)
            cards = {t.card_number for t in travel} | {r.card_number for r in repeats} | \
                {o.stay.card_number for o in overdue}
            names = q.holder_names(s, cards)
    travel_rows = [{"card": h.card_number, "card_url": _card_url(h.card_number), "name": names.get(h.card_number, ""),
                    "first_site": h.first.site_id, "first_at": _local(request, h.first.captured_at),
                    "first_outcome": h.first.outcome, "second_site": h.second.site_id,
                    "second_at": _local(request, h.second.captured_at), "second_outcome": h.second.outcome,
                    "minutes": f"{h.minutes:.1f}"} for h in travel]
    repeat_rows = [{"card": r.card_number, "card_url": _card_url(r.card_number), "name": names.get(r.card_number, ""),
                    "count": r.count, "sites": ", ".join(r.sites), "last": _local(request, r.last_at)} for r in repeats]
    overdue_rows = [{"card": o.stay.card_number, "card_url": _card_url(o.stay.card_number),
                     "name": names.get(o.stay.card_number, ""), "site": o.stay.site_id, "ward": o.stay.ward or "",
                     "bed": o.stay.bed or "", "admitted": _local(request, o.stay.admitted_at, False),
                     "last_check": _local(request, o.last_check, False) or "never",
                     "due": _local(request, o.due_at, False), "hours": f"{o.hours_overdue:.1f}"} for o in overdue]
    device_rows = [{"device": d.device_id, "site": d.site_id, "total": d.total, "poor": d.poor,
                    "rate": f"{100 * d.rate:.0f}%"} for d in devices]
    return render(request, "suspicion.html", v, travel=travel_rows, repeats=repeat_rows, overdue=overdue_rows,
                  devices=device_rows, ds=ds)


# ---- daily report -------------------------------------------------------------------------------

def _report_date(request: Request, day: str | None) -> date:
    ds = dsettings(request)
    if not day:
        return q.due_report_date(utcnow(), ds.tz, ds.report_cutoff)
    try:
        return date.fromisoformat(day)
    except ValueError:
        raise Refused(422, f"date: {day[:20]!r} is not YYYY-MM-DD") from None


def _report_data(request: Request, v: Viewer, d: date):
    ds = dsettings(request)
    start, end = q.report_period(d, ds.tz, ds.report_cutoff)
    now = utcnow()
    with _session(request) as s:
        rows = q.daily_report(s, start, end, now)
        findings_alerts, overdue, names = [], [], {}
        if v.personal:
            findings_alerts = q.report_alerts(s, start, end)
            overdue = q.overdue_bedside(s, now)
            names = q.holder_names(s, {a.card_number for a in findings_alerts if a.card_number}
                                   | {o.stay.card_number for o in overdue})
    findings = [{"kind": "no_match alert", "site": a.site_id or "", "at": _local(request, a.raised_at),
                 "card": a.card_number or "", "name": names.get(a.card_number or "", ""), "device": a.device_id or "",
                 "detail": f"card retained: {'yes' if a.card_retained else 'no'}; alert {a.status}"}
                for a in findings_alerts]
    findings += [{"kind": "bedside check overdue", "site": o.stay.site_id, "at": _local(request, o.due_at),
                  "card": o.stay.card_number, "name": names.get(o.stay.card_number, ""), "device": "",
                  "detail": f"ward {o.stay.ward or '-'} bed {o.stay.bed or '-'}; {o.hours_overdue:.1f} h overdue"}
                 for o in overdue]
    return start, end, rows, findings


@router.get("/dashboard/report", response_class=HTMLResponse)
def report(request: Request, v: ViewerDep, day: str | None = Query(default=None, alias="date", max_length=20)):
    d = _report_date(request, day)
    start, end, rows, findings = _report_data(request, v, d)
    totals = {k: sum(r[k] for r in rows) for k, _ in q.REPORT_COLUMNS
              if k not in ("site_id", "site_name", "failure_rate")}
    return render(request, "report.html", v, day=d, start=_local(request, start, False), end=_local(request, end, False),
                  rows=rows, totals=totals, columns=q.REPORT_COLUMNS, findings=findings,
                  prev=(d - timedelta(days=1)).isoformat(), next=(d + timedelta(days=1)).isoformat(),
                  generated=_local(request, utcnow()), cutoff=dsettings(request).report_cutoff.strftime("%H:%M"))


@router.get("/dashboard/report.csv")
def report_csv(request: Request, v: ViewerDep, day: str | None = Query(default=None, alias="date", max_length=20)):
    d = _report_date(request, day)
    _, _, rows, _ = _report_data(request, v, d)
    cols = [k for k, _ in q.REPORT_COLUMNS]
    return _csv_response(f"fpverify-daily-report-{d.isoformat()}.csv", cols, rows,
                         header=[label for _, label in q.REPORT_COLUMNS])


@router.get("/dashboard/report-findings.csv")
def report_findings_csv(request: Request, v: ViewerDep,
                        day: str | None = Query(default=None, alias="date", max_length=20)):
    auth.require_personal(v)
    d = _report_date(request, day)
    _, _, _, findings = _report_data(request, v, d)
    cols = ["kind", "site", "at", "card", "name", "device", "detail"]
    return _csv_response(f"fpverify-daily-findings-{d.isoformat()}.csv", cols, findings)
