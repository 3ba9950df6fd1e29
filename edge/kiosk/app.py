"""The kiosk page: served by the station on localhost to the Chromium beside the sensor.

GET  /kiosk?lang=zh_CN|en   the page (all assets under /kiosk/static, nothing from the internet)
GET  /kiosk/events?lang=..  Server-Sent Events: the screen as translated text, on every change
GET  /kiosk/state?lang=..   the same, once (JSON)
POST /kiosk/card            {"text": "<line the card reader typed>"}: a card for the desk
POST /kiosk/consent         {"answer": "agree" | "decline"}: the holder's answer on the consent screen
POST /kiosk/shift/finger    the clerk signs in with their finger (a press against the site's clerks only)
POST /kiosk/shift/pin       {"operator_id", "pin"}: the PIN fallback (throttled, edge/kiosk/shift.py)
POST /kiosk/shift/signout   end the shift

What goes to the page is words, a tone and counts: never an image, a template or a card number.
With `[shift] required`, the page shows the clerk's sign-in until a shift is open, and a card is
refused (reason "no_shift") without one.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from string import Template
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from fpverify.edge.kiosk.cards import BadRead, parse_card
from fpverify.edge.kiosk.desk import FINAL, Desk, DeskBusy
from fpverify.edge.kiosk.display import Hub
from fpverify.edge.kiosk.shift import SignInRefused
from fpverify.edge.kiosk.texts import chrome, render, render_shift
from fpverify.edge.prompts import Prompt, Step

STATIC = Path(__file__).resolve().parent / "static"
PAGE = Template((STATIC / "kiosk.html").read_text(encoding="utf-8"))


class CardLine(BaseModel):
    text: str = Field(max_length=4096)


class ConsentAnswer(BaseModel):
    answer: Literal["agree", "decline"]


class PinSignIn(BaseModel):
    operator_id: str = Field(min_length=1, max_length=64)
    pin: str = Field(min_length=1, max_length=64)


def _shift(station, desk: Desk | None, lang: str | None) -> dict:
    shift = getattr(station, "shift", None)
    if shift is None:
        return render_shift(False, None, False, None, None, lang)
    job = desk.current() if desk is not None else None
    signing = job is not None and job.sign_in and job.state not in FINAL
    return render_shift(shift.required, shift.operator(), signing, shift.note, shift.retry_after, lang)


def _state(hub: Hub, lang: str | None, station=None, desk: Desk | None = None) -> dict:
    seq, view, online, pending = hub.snapshot()
    return {"seq": seq, **render(view, online, pending, lang), "shift": _shift(station, desk, lang)}


def create_kiosk_app(hub: Hub, desk: Desk, station, default_language: str = "zh_CN") -> FastAPI:
    app = FastAPI(title="fpverify kiosk", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/kiosk/static", StaticFiles(directory=STATIC), name="static")
    shift = getattr(station, "shift", None)
    if shift is not None:  # a shift opening or ending re-renders every page
        shift.on_change = lambda: hub.publish(view=hub.snapshot()[1])

    def lang_of(request: Request) -> str:
        return request.query_params.get("lang") or default_language

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/kiosk")

    @app.get("/kiosk", response_class=HTMLResponse)
    def page(request: Request) -> HTMLResponse:
        c = chrome(lang_of(request))
        switch = " ".join(
            f'<a href="/kiosk?lang={code}" class="lang{" current" if code == c["lang"] else ""}" '
            f'data-lang="{code}">{html.escape(name)}</a>'
            for code, name in c["languages"].items()
        )
        body = PAGE.substitute(
            html_lang=c["html_lang"],
            lang=c["lang"],
            page_title=html.escape(c["page_title"]),
            language=html.escape(c["language"]),
            switch=switch,
            card_label=html.escape(c["card_label"]),
            initial=json.dumps(_state(hub, c["lang"], station, desk), ensure_ascii=False).replace("<", "\\u003c"),
        )
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    @app.get("/kiosk/state")
    def state(request: Request) -> JSONResponse:
        return JSONResponse(_state(hub, lang_of(request), station, desk))

    @app.get("/kiosk/events")
    async def events(request: Request) -> StreamingResponse:
        lang = lang_of(request)

        async def stream():
            yield "retry: 1000\n\n"
            async for snap in hub.changes():
                if await request.is_disconnected():
                    return
                if snap is None:
                    yield ": keepalive\n\n"
                    continue
                seq, view, online, pending = snap
                body = {"seq": seq, **render(view, online, pending, lang), "shift": _shift(station, desk, lang)}
                data = json.dumps(body, ensure_ascii=False)
                yield f"id: {seq}\ndata: {data}\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    def foreign(request: Request) -> JSONResponse | None:
        """Only this station's own page may post (a page from elsewhere in the kiosk's browser may not)."""
        origin = request.headers.get("origin")
        if origin and origin.split("://", 1)[-1] != request.headers.get("host"):
            return JSONResponse({"error": "only this station's own page may send this"}, status_code=403)
        return None

    @app.post("/kiosk/consent")
    def consent(answer: ConsentAnswer, request: Request) -> JSONResponse:
        refused = foreign(request)
        if refused is not None:
            return refused
        taken = desk.answer_consent(answer.answer == "agree")
        return JSONResponse({"accepted": taken}, status_code=200 if taken else 409)

    @app.post("/kiosk/card")
    def card(line: CardLine, request: Request) -> JSONResponse:
        refused = foreign(request)
        if refused is not None:
            return refused
        try:
            number = parse_card(line.text).card_number
        except BadRead as exc:
            station.show(Prompt(Step.CARD_NOT_READ, reasons=(exc.reason,), detail=str(exc)))
            return JSONResponse({"accepted": False, "reason": exc.reason})
        if shift is not None and shift.required and shift.operator() is None:
            return JSONResponse({"accepted": False, "reason": "no_shift"}, status_code=409)
        try:
            job = desk.submit(number, "reader")
        except DeskBusy:
            return JSONResponse({"accepted": False, "reason": "busy"}, status_code=409)
        return JSONResponse({"accepted": True, "job": job.id}, status_code=202)

    @app.post("/kiosk/shift/finger")
    def sign_in_finger(request: Request) -> JSONResponse:
        refused = foreign(request)
        if refused is not None:
            return refused
        if shift is None:
            return JSONResponse({"accepted": False, "reason": "no_shift"}, status_code=404)
        try:
            job = desk.submit("", "shift", sign_in=True)
        except DeskBusy:
            return JSONResponse({"accepted": False, "reason": "busy"}, status_code=409)
        hub.publish(view=hub.snapshot()[1])  # the page shows "press your finger now"
        return JSONResponse({"accepted": True, "job": job.id}, status_code=202)

    @app.post("/kiosk/shift/pin")
    def sign_in_pin(body: PinSignIn, request: Request) -> JSONResponse:
        refused = foreign(request)
        if refused is not None:
            return refused
        if shift is None:
            return JSONResponse({"opened": False, "reason": "no_shift"}, status_code=404)
        try:
            operator = shift.open_with_pin(body.operator_id, body.pin)
        except SignInRefused as exc:
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
            return JSONResponse({"opened": False, "reason": exc.reason, "retry_after": exc.retry_after},
                                status_code=429 if exc.reason in ("pin_locked", "pin_off") else 401, headers=headers)
        return JSONResponse({"opened": True, "operator": operator})

    @app.post("/kiosk/shift/signout")
    def sign_out(request: Request) -> JSONResponse:
        refused = foreign(request)
        if refused is not None:
            return refused
        if shift is not None:
            shift.sign_out()
        return JSONResponse({"open": False})

    return app
