"""A card holder's page: consents, enrolled templates (metadata only), delegates, history."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from fpverify.i18n import N_
from fpverify.server.dashboard import auth
from fpverify.server.dashboard import queries as q
from fpverify.server.dashboard.auth import Refused
from fpverify.server.dashboard.routes.common import ViewerDep, local, named, render, result_rows, session
from fpverify.server.models import utcnow

router = APIRouter()
FINGERS = {0: N_("unknown"), 1: N_("right thumb"), 2: N_("right index"), 3: N_("right middle"), 4: N_("right ring"),
           5: N_("right little"), 6: N_("left thumb"), 7: N_("left index"), 8: N_("left middle"), 9: N_("left ring"),
           10: N_("left little")}


@router.get("/dashboard/cards/{card_number}", response_class=HTMLResponse)
def card_page(request: Request, card_number: str, v: ViewerDep):
    auth.require_personal(v)
    with session(request) as s:
        cv = q.card_view(s, card_number)
        if cv is None:
            raise Refused(404, "no card holder with this card number")
        history = result_rows(request, s, v, cv.history)
        dnames = {d.id: d.name for d in cv.delegates}
        site_names, device_names = named(s)
    templates_rows = [{"finger": FINGERS.get(t.finger, str(t.finger)), "role": t.role,
                       "delegate": dnames.get(t.delegate_id or "", ""), "quality": t.quality, "status": t.status,
                       "enrolled_at": local(request, t.enrolled_at), "device": device_names.get(t.device_id, t.device_id),
                       "site": site_names.get(t.site_id or "", t.site_id or ""),
                       "by": t.enrolled_by, "revoked": t.revoked_reason or ""} for t in cv.templates]
    now = utcnow()
    delegates = [{"name": d.name, "relation": d.relation or "", "from": local(request, d.valid_from, False),
                  "until": local(request, d.valid_until, False), "valid": d.valid_from <= now < d.valid_until}
                 for d in cv.delegates]
    return render(request, "card.html", v, h=cv.holder, consents=cv.consents, templates_rows=templates_rows,
                  delegates=delegates, history=history, history_total=cv.history_total, alerts=cv.alerts,
                  stays=cv.stays, site_names=site_names, device_names=device_names)
