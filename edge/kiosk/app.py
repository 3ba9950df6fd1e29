"""The kiosk page: served by the station on localhost to the Chromium beside the sensor.

GET  /kiosk?lang=zh_CN|en   the page (all assets under /kiosk/static, nothing from the internet)
GET  /kiosk/events?lang=..  Server-Sent Events: the screen as translated text, on every change
GET  /kiosk/state?lang=..   the same, once (JSON)
POST /kiosk/card            {"text": "<line the card reader typed>"}: a card for the desk
POST /kiosk/consent         {"answer": "agree" | "decline"}: the holder's answer on the consent screen

What goes to the page is words, a tone and counts: never an image, a template or a card number.
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
from fpverify.edge.kiosk.desk import Desk, DeskBusy
from fpverify.edge.kiosk.display import Hub
from fpverify.edge.kiosk.texts import chrome, render
from fpverify.edge.prompts import Prompt, Step

STATIC = Path(__file__).resolve().parent / "static"
PAGE = Template((STATIC / "kiosk.html").read_text(encoding="utf-8"))


class CardLine(BaseModel):
    text: str = Field(max_length=4096)


class ConsentAnswer(BaseModel):
    answer: Literal["agree", "decline"]


def _state(hub: Hub, lang: str | None) -> dict:
    seq, view, online, pending = hub.snapshot()
    return {"seq": seq, **render(view, online, pending, lang)}


def create_kiosk_app(hub: Hub, desk: Desk, station, default_language: str = "zh_CN") -> FastAPI:
    app = FastAPI(title="fpverify kiosk", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/kiosk/static", StaticFiles(directory=STATIC), name="static")

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
            initial=json.dumps(_state(hub, c["lang"]), ensure_ascii=False).replace("<", "\\u003c"),
        )
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    @app.get("/kiosk/state")
    def state(request: Request) -> JSONResponse:
        return JSONResponse(_state(hub, lang_of(request)))

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
                data = json.dumps({"seq": seq, **render(view, online, pending, lang)}, ensure_ascii=False)
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
        try:
            job = desk.submit(number, "reader")
        except DeskBusy:
            return JSONResponse({"accepted": False, "reason": "busy"}, status_code=409)
        return JSONResponse({"accepted": True, "job": job.id}, status_code=202)

    return app
