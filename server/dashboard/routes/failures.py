"""Failed (or any) verifications with filters, paging and the CSV export."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from fpverify.server.dashboard import queries as q
from fpverify.server.dashboard import result_table
from fpverify.server.dashboard.auth import Refused
from fpverify.server.dashboard.routes import common
from fpverify.server.dashboard.routes.common import ViewerDep, render

router = APIRouter()
PURPOSES = ("registration", "admission", "billing", "pharmacy", "bedside")


def _filter(request: Request, site, device, outcome, card, since, until, purpose,
            errors: list[str]) -> q.ResultFilter:
    return q.ResultFilter(site_id=site or None, device_id=device or None, outcome=outcome, card_number=card or None,
                          since=common.parse_local(request, since, "from", errors),
                          until=common.parse_local(request, until, "until", errors), purpose=purpose or None)


def _cannot_match(request: Request, s, f: q.ResultFilter, errors: list[str]) -> None:
    """Say why a filter cannot match anything (from after until, a card number that is no card's)."""
    sp = common.speaker(request)
    errors.extend(sp._(message, **values) for message, values in q.impossible(s, f))


@router.get("/dashboard/failures", response_class=HTMLResponse)
def failures(request: Request, v: ViewerDep,
             site: str | None = Query(default=None, max_length=64), device: str | None = Query(default=None, max_length=64),
             outcome: str = Query(default="failures", max_length=20), card: str | None = Query(default=None, max_length=32),
             since: str | None = Query(default=None, max_length=40), until: str | None = Query(default=None, max_length=40),
             purpose: str | None = Query(default=None, max_length=20), offset: int = Query(default=0, ge=0)):
    ds = common.dsettings(request)
    errors: list[str] = []
    if outcome not in ("failures", "any", *q.OUTCOMES):
        errors.append(common.speaker(request)._("outcome: unknown value {value}", value=repr(outcome[:20])))
        outcome = "failures"
    if card and not v.personal:
        errors.append(common.speaker(request)._("card: your role may not search by card number"))
        card = None
    f = _filter(request, site, device, outcome, card, since, until, purpose, errors)
    with common.session(request) as s:
        _cannot_match(request, s, f, errors)
        records, total = q.results_page(s, f, ds.page_size, offset)
        rows = common.result_rows(request, s, v, records)
        sites, devices = (sorted(names.items()) for names in common.named(s))
    params = {k: val for k, val in {"site": site, "device": device, "outcome": outcome, "card": card, "since": since,
                                     "until": until, "purpose": purpose}.items() if val}
    page = {"offset": offset, "size": ds.page_size, "total": total,
            "prev": f"?{urlencode(params | {'offset': max(0, offset - ds.page_size)})}" if offset > 0 else None,
            "next": f"?{urlencode(params | {'offset': offset + ds.page_size})}"
            if offset + ds.page_size < total else None}
    csv_url = f"/dashboard/failures.csv?{urlencode(params)}"
    return render(request, "failures.html", v, rows=rows, total=total, errors=errors, sites=sites, devices=devices,
                  outcomes=q.OUTCOMES, purposes=PURPOSES,
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
    f = _filter(request, site, device, outcome, card, since, until, purpose, errors)
    if errors:
        raise Refused(422, "; ".join(errors))
    with common.session(request) as s:
        records, _ = q.results_page(s, f, 100000)
        rows = common.result_rows(request, s, v, records, for_csv=True)
    cols = [c.key for c in result_table.result_columns(v.personal)]
    return common.csv_response("verifications.csv", cols, rows)
