"""Alerts: the list with each alert's notes (who, when, what), and the supervisor's actions
(acknowledge, add a note, resolve) through server.crud.alerts, which audits each note."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from fpverify.i18n import N_
from fpverify.server.crud import alerts as alerts_crud
from fpverify.server.crud.errors import DomainError
from fpverify.server.dashboard import auth
from fpverify.server.dashboard import queries as q
from fpverify.server.dashboard.auth import Viewer
from fpverify.server.dashboard.routes import common
from fpverify.server.dashboard.routes.common import ViewerDep, render
from fpverify.server.models import AlertStatus

router = APIRouter()


@router.get("/dashboard/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, v: ViewerDep, status: str | None = Query(default="active", max_length=20),
                site: str | None = Query(default=None, max_length=64), msg: str | None = Query(default=None, max_length=200)):
    statuses = {"active": None, "all": None, **{s.value: s.value for s in AlertStatus}}
    if status not in statuses:
        status = "active"
    with common.session(request) as s:
        rows = q.alerts(s, statuses[status], site or None, 500)
        if status == "active":
            rows = [a for a in rows if a.status != AlertStatus.RESOLVED]
        names = q.holder_names(s, {a.card_number for a in rows if a.card_number}) if v.personal else {}
        notes = alerts_crud.notes_of(s, [a.id for a in rows])
        counts = q.alert_counts(s)
        site_names, device_names = common.named(s)
    sites = sorted(site_names.items())
    view = [{"id": a.id, "kind": a.kind, "raised": common.local(request, a.raised_at),
             "site": site_names.get(a.site_id or "", a.site_id or ""),
             "device": device_names.get(a.device_id or "", a.device_id or ""), "card": v.card(a.card_number),
             "card_url": common.card_url(a.card_number) if v.personal and a.card_number else None,
             "name": names.get(a.card_number or "", "") if v.personal else "", "retained": a.card_retained,
             "status": a.status, "ack": f"{a.acknowledged_by} {common.local(request, a.acknowledged_at, False)}"
             if a.acknowledged_by else "", "resolved": f"{a.resolved_by} {common.local(request, a.resolved_at, False)}"
             if a.resolved_by else "",
             # notes may name people: the text is for the roles that see personal data
             "notes": [{"at": common.local(request, n.at, False), "by": n.author, "kind": n.kind,
                        "text": n.text if v.personal else ""} for n in notes.get(a.id, [])]}
            for a in rows]
    return render(request, "alerts.html", v, rows=view, status=status, site=site or "", sites=sites, counts=counts,
                  msg=msg)


def _back(request: Request, message: str, **values) -> RedirectResponse:
    message = common.speaker(request)._(message, **values)
    return RedirectResponse(f"/dashboard/alerts?msg={quote(message[:150])}", status_code=303)


def _act(request: Request, v: Viewer, alert_id: int, csrf_token: str, comment: str, kind: str):
    auth.check_csrf(request, v, csrf_token)
    auth.require_act(v)
    comment = comment.strip()
    if kind == "resolve" and not comment:
        return _back(request, "a resolution needs a comment")
    if kind == "note" and not comment:
        return _back(request, "a note needs text")
    with common.session(request) as s:
        try:
            if kind == "resolve":
                alerts_crud.resolve_alert(s, v.username, alert_id, comment)
            elif kind == "note":
                alerts_crud.add_note(s, v.username, alert_id, comment)
            else:
                alerts_crud.acknowledge_alert(s, v.username, alert_id, comment or None)
            s.commit()
        except DomainError as exc:
            s.rollback()
            return _back(request, exc.msgid, **exc.values)
    done = {"resolve": N_("alert {id} resolved"), "note": N_("alert {id}: note added"),
            "acknowledge": N_("alert {id} acknowledged")}[kind]
    return _back(request, done, id=alert_id)


@router.post("/dashboard/alerts/{alert_id}/acknowledge")
def acknowledge(request: Request, alert_id: int, v: ViewerDep, csrf_token: str = Form("", max_length=200),
                comment: str = Form("", max_length=2000)):
    return _act(request, v, alert_id, csrf_token, comment, "acknowledge")


@router.post("/dashboard/alerts/{alert_id}/notes")
def add_note(request: Request, alert_id: int, v: ViewerDep, csrf_token: str = Form("", max_length=200),
             comment: str = Form("", max_length=2000)):
    return _act(request, v, alert_id, csrf_token, comment, "note")


@router.post("/dashboard/alerts/{alert_id}/resolve")
def resolve(request: Request, alert_id: int, v: ViewerDep, csrf_token: str = Form("", max_length=200),
            comment: str = Form("", max_length=2000)):
    return _act(request, v, alert_id, csrf_token, comment, "resolve")
