"""Suspicion points (疑点): one card at two sites too fast, repeated no match, overdue bedside
checks, and desks with many poor presses. A supervisor marks a point handled with a note
(server/crud/suspicion.py, audited); it stays listed, marked handled."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from fpverify.server.crud import suspicion as suspicion_crud
from fpverify.server.crud.errors import DomainError
from fpverify.server.dashboard import auth
from fpverify.server.dashboard import queries as q
from fpverify.server.dashboard import suspicion_rules as rules
from fpverify.server.dashboard.routes import common
from fpverify.server.dashboard.routes.common import ViewerDep, render
from fpverify.server.models import utcnow

router = APIRouter()


def _handled(marks, kind: str, key: str, request: Request) -> dict:
    m = marks.get((kind, key))
    return {"kind": kind, "key": key, "handled": None if m is None else
            {"by": m.handled_by, "at": common.local(request, m.handled_at, False), "note": m.note}}


@router.get("/dashboard/suspicion", response_class=HTMLResponse)
def suspicion(request: Request, v: ViewerDep, msg: str | None = Query(default=None, max_length=200)):
    ds = common.dsettings(request)
    sp = common.speaker(request)
    now = utcnow()
    since = now - timedelta(days=ds.lookback_days)
    today = now.astimezone(ds.tz).date().isoformat()
    with common.session(request) as s:
        devices = rules.poor_quality_devices(s, now - timedelta(hours=24), ds)
        travel, repeats, overdue, names = [], [], [], {}
        if v.personal:
            travel = rules.impossible_travel(s, since, ds.travel_minutes)
            repeats = rules.repeated_no_match(s, since, ds.repeat_no_match)
            overdue = q.overdue_bedside(s, now)
            cards = {t.card_number for t in travel} | {r.card_number for r in repeats} | \
                {o.stay.card_number for o in overdue}
            names = q.holder_names(s, cards)
        sites, dnames = common.named(s)
        marks = suspicion_crud.marks(s)

    def site(x: str) -> str:
        return sites.get(x, x)

    travel_rows = [{"card": h.card_number, "card_url": common.card_url(h.card_number), "name": names.get(h.card_number, ""),
                    "first_site": site(h.first.site_id), "first_at": common.local(request, h.first.captured_at),
                    "first_outcome": sp.word("outcome", h.first.outcome), "second_site": site(h.second.site_id),
                    "second_at": common.local(request, h.second.captured_at),
                    "second_outcome": sp.word("outcome", h.second.outcome), "minutes": sp.num(h.minutes, 1),
                    **_handled(marks, "travel", str(h.second.result_id), request)} for h in travel]
    repeat_rows = [{"card": r.card_number, "card_url": common.card_url(r.card_number), "name": names.get(r.card_number, ""),
                    "count": sp.num(r.count), "sites": sp._(", ").join(site(x) for x in r.sites),
                    "last": common.local(request, r.last_at),
                    **_handled(marks, "repeat", f"{r.card_number}@{r.last_at.isoformat()}", request)} for r in repeats]
    overdue_rows = [{"card": o.stay.card_number, "card_url": common.card_url(o.stay.card_number),
                     "name": names.get(o.stay.card_number, ""), "site": site(o.stay.site_id), "ward": o.stay.ward or "",
                     "bed": o.stay.bed or "", "admitted": common.local(request, o.stay.admitted_at, False),
                     "last_check": common.local(request, o.last_check, False) or sp._("never"),
                     "due": common.local(request, o.due_at, False), "hours": sp.num(o.hours_overdue, 1),
                     **_handled(marks, "overdue", f"{o.stay.id}@{o.due_at.isoformat()}", request)} for o in overdue]
    device_rows = [{"device_id": d.device_id, "device": dnames.get(d.device_id, d.device_id), "site": site(d.site_id),
                    "total": sp.num(d.total), "poor": sp.num(d.poor), "rate": sp.pct(d.rate, 0),
                    **_handled(marks, "device", f"{d.device_id}@{today}", request)} for d in devices]
    return render(request, "suspicion.html", v, travel=travel_rows, repeats=repeat_rows, overdue=overdue_rows,
                  devices=device_rows, ds=ds, window=ds.poor_window, min_checks=ds.poor_min_checks, msg=msg)


@router.post("/dashboard/suspicion/handle")
def handle(request: Request, v: ViewerDep, csrf_token: str = Form("", max_length=200),
           kind: str = Form("", max_length=16), key: str = Form("", max_length=200),
           note: str = Form("", max_length=2000)):
    auth.check_csrf(request, v, csrf_token)
    auth.require_act(v)
    sp = common.speaker(request)
    with common.session(request) as s:
        try:
            suspicion_crud.mark_handled(s, v.username, kind, key, note)
            s.commit()
            message = sp._("marked handled")
        except DomainError as exc:
            s.rollback()
            message = sp._(exc.msgid, **exc.values)
    return RedirectResponse(f"/dashboard/suspicion?msg={quote(message[:150])}", status_code=303)
