"""What every dashboard page uses: templates, rendering, the viewer, local times, CSV answers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from fpverify.server.core.config import DashboardSettings
from fpverify.server.dashboard import auth, result_table
from fpverify.server.dashboard import queries as q
from fpverify.server.dashboard.auth import Viewer
from fpverify.server.dashboard.i18n import Speaker, language, languages

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.globals["result_columns"] = result_table.result_columns

ViewerDep = Annotated[Viewer, Depends(auth.viewer)]
OUTCOME_COLOURS = {"match": "#2e7d32", "delegate_match": "#66bb6a", "no_match": "#c62828",
                   "poor_quality": "#f9a825", "not_enrolled": "#6d4c41", "card_blocked": "#8e24aa",
                   "sensor_error": "#546e7a"}


def dsettings(request: Request) -> DashboardSettings:
    return request.app.state.settings.dashboard


def session(request: Request):
    return request.app.state.db.sessionmaker()


def speaker(request: Request) -> Speaker:
    """Words, times and numbers in the viewer's language and the office's time zone."""
    return Speaker(language(request), dsettings(request).tz)


def local(request: Request, dt: datetime | None, seconds: bool = True) -> str:
    """A time in the office's zone, formatted for the viewer's locale."""
    return speaker(request).dt(dt, seconds)


def iso_local(request: Request, dt: datetime | None) -> str:
    """A time in the office's zone as ISO text (CSV files: read by programs)."""
    return "" if dt is None else dt.astimezone(dsettings(request).tz).strftime("%Y-%m-%d %H:%M:%S")


def render(request: Request, name: str, v: Viewer | None, status_code: int = 200, **ctx) -> HTMLResponse:
    ds = dsettings(request)
    sp = speaker(request)
    ctx.update(viewer=v, tzname=ds.timezone, refresh_s=ds.refresh_s, page_name=name.removesuffix(".html"),
               local=sp.dt, colours=OUTCOME_COLOURS, mode=request.app.state.settings.mode,
               _=sp._, word=sp.word, num=sp.num, pct=sp.pct, fday=sp.day, lang=sp.lang, html_lang=sp.lang.replace("_", "-"),
               languages=languages(), here=_here(request, ctx))
    resp = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    resp.headers["Cache-Control"] = "no-store"  # pages hold personal data
    return resp


def _here(request: Request, ctx: dict) -> str:
    """Where the language switch comes back to: this page (the login page keeps only its checked `next`)."""
    if "next" in ctx and request.url.path == "/dashboard/login":
        return f"/dashboard/login?next={quote(str(ctx['next']), safe='')}"
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def parse_local(request: Request, text: str | None, field: str, errors: list[str]) -> datetime | None:
    """A datetime-local or date input, read in the dashboard's time zone."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text) if "T" in text or " " in text else datetime.fromisoformat(text + "T00:00")
    except ValueError:
        sp = speaker(request)
        errors.append(sp._("{field}: not a date/time ({value}); use YYYY-MM-DDTHH:MM", field=sp._(field),
                           value=repr(text[:40])))
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dsettings(request).tz)
    return value.astimezone(UTC)


def result_rows(request: Request, s, v: Viewer, records, for_csv: bool = False) -> list[dict]:
    """Result rows with sites and devices by name, the operator (masked like card numbers for roles
    without personal data), and, on pages, outcomes and details in words."""
    when = (lambda dt: iso_local(request, dt)) if for_csv else (lambda dt: local(request, dt))
    rows = result_table.result_rows(s, records, v.personal, v.card, when)
    sites, devices = named(s)
    sp = speaker(request)
    for r, rec in zip(rows, records, strict=True):
        r["site"], r["device"] = sites.get(rec.site_id, rec.site_id), devices.get(rec.device_id, rec.device_id)
        r["operator"] = v.card(rec.operator_id)
        if not for_csv:
            r["outcome_label"] = sp.word("outcome", rec.outcome)
            r["purpose"] = sp.word("purpose", rec.purpose)
            r["detail"] = sp.detail(rec.outcome, rec.detail)
    return rows


def named(s) -> tuple[dict[str, str], dict[str, str]]:
    """Site and device names by id (a device without a name shows its id)."""
    return q.site_names(s), q.device_names(s)


def card_url(card: str) -> str:
    return f"/dashboard/cards/{quote(card, safe='')}"


def csv_response(filename: str, cols: list[str], rows: list[dict], header: list[str] | None = None) -> Response:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header or cols)
    for r in rows:
        w.writerow([csv_cell(r.get(c, "")) for c in cols])
    # BOM: spreadsheet programs on Chinese Windows then read UTF-8 names correctly
    return Response("\ufeff" + buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


def csv_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _is_number(text) else text  # formula injection


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
