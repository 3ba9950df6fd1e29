"""The station's API for the desk's hospital information system (HIS).

POST   /his/v1/verifications              start a check: card, the clerk's operator id, the purpose
GET    /his/v1/verifications/{id}?wait_s=N  its state; with wait_s, a long poll until it is final
DELETE /his/v1/verifications/{id}         cancel it (effective until the finger is being read)
POST   /his/v1/enrollments                enroll the card's holder on the kiosk screen (consent asked there)
GET    /his/v1/enrollments/{id}, DELETE   as for a verification
GET    /his/v1/status                     the desk: busy, connected, results waiting

With `[shift] required`, a verification needs a clerk signed in at the station (409, reason
"no_shift", otherwise), and its result carries that clerk as operator_id, whatever the HIS sends.

Every call needs `Authorization: Bearer <his.token>`. Bound to his.host (localhost, or the desk's LAN
address where the HIS runs on the clerk's PC). OpenAPI at /his/v1/openapi.json (docs/his/openapi.json).
"""

from __future__ import annotations

import hmac
from datetime import datetime

import anyio
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from fpverify.edge.kiosk.cards import BadRead, parse_card
from fpverify.edge.kiosk.desk import FINAL, Desk, DeskBusy, Job
from fpverify.edge.kiosk.enrolling import EnrollRequest
from fpverify.edge.kiosk.texts import View as ScreenView
from fpverify.edge.kiosk.texts import render
from fpverify.edge.wire import ENROLL_PRESSES, MAX_PRESSES, MIN_PRESSES, Outcome, Purpose, VerificationResult
from fpverify.edge.workflow import MESSAGES

MIN_TOKEN = 16


class StartVerification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card: str = Field(
        min_length=1,
        max_length=2048,
        description="The card as read: number, social-security "
        "number or QR payload (formats: docs/station.md, 'Card in')",
    )
    operator_id: str = Field(min_length=1, max_length=64, description="The clerk's operator id in the HIS")
    purpose: Purpose


class StartEnrollment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card: str = Field(min_length=1, max_length=2048, description="The card as read (formats as for a check)")
    username: str = Field(
        min_length=1, max_length=64, description="The clerk's registry account (role enroller)"
    )
    password: str = Field(min_length=1, max_length=256, description="Used once to log in at the registry")
    fingers: list[int] = Field(
        default=[2, 7], min_length=1, max_length=10, description="ISO finger positions"
    )
    impressions: int = Field(default=ENROLL_PRESSES, ge=MIN_PRESSES, le=MAX_PRESSES)
    delegate_id: str | None = Field(default=None, max_length=64, description="Enroll an authorised delegate")


class VerificationState(BaseModel):
    id: str
    kind: str = Field("verification", description="verification | enrollment")
    state: str = Field(description="queued | running | done | cancelled | card_not_read | failed | declined")
    card_number: str
    operator_id: str | None
    purpose: Purpose | None
    created_at: datetime
    finished_at: datetime | None = None
    outcome: Outcome | None = None
    result_id: str | None = Field(
        None, description="The result's id at the registry (GET /api/v1/his/results/{id}, role his)"
    )
    message: str | None = Field(None, description="What the clerk does, in English")
    message_zh: str | None = Field(None, description="The same, in Chinese")
    error: str | None = None
    result: VerificationResult | None = None
    enrollment: dict | None = Field(None, description="The registry's answer to the enrollment upload")


class Problem(BaseModel):
    detail: str
    reason: str | None = None
    current: str | None = None


def _state(job: Job) -> VerificationState:
    r = job.result
    zh = None
    if r is not None:
        screen = render(ScreenView(r.outcome.value), None, 0, "zh_CN")
        zh = "；".join(x for x in (screen["title"], screen["staff"]) if x)
    return VerificationState(
        id=job.id,
        state=job.state,
        card_number=job.card_number,
        operator_id=job.operator_id,
        purpose=job.purpose,
        created_at=job.created_at,
        finished_at=job.finished_at,
        outcome=r.outcome if r else None,
        result_id=str(r.result_id) if r else None,
        message=MESSAGES[r.outcome] if r else None,
        message_zh=zh,
        error=job.error,
        result=r,
        kind="enrollment" if job.enrollment else "verification",
        enrollment=job.enrollment.answer if job.enrollment else None,
    )


def create_his_app(desk: Desk, station, token: str, max_wait_s: float = 60.0) -> FastAPI:
    if len(token) < MIN_TOKEN:
        raise ValueError(f"the HIS token must have at least {MIN_TOKEN} characters")
    expected = token.encode()
    app = FastAPI(
        title="fpverify station: HIS API",
        version="1",
        description="Start, follow and cancel fingerprint checks at this desk.",
        openapi_url="/his/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )

    bearer = HTTPBearer(auto_error=False, description="his.token of the station's config")

    def authorised(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        given = creds.credentials.encode() if creds is not None else b""
        if not hmac.compare_digest(given, expected):
            raise HTTPException(401, "a valid HIS token is required", headers={"WWW-Authenticate": "Bearer"})

    guard = [Depends(authorised)]
    answers = {401: {"model": Problem}, 404: {"model": Problem}}

    def job_or_404(job_id: str) -> Job:
        job = desk.get(job_id)
        if job is None:
            raise HTTPException(404, f"no verification or enrollment {job_id} at this desk")
        return job

    starts = {
        "status_code": 201,
        "response_model": VerificationState,
        "dependencies": guard,
        "responses": {
            **answers,
            409: {"model": Problem, "description": "the desk is busy"},
            422: {"model": Problem, "description": "the card was not read; scan again"},
        },
    }

    def queue(card: str, **job):
        try:
            number = parse_card(card).card_number
        except BadRead as exc:
            return JSONResponse({"detail": f"card not read: {exc}", "reason": exc.reason}, status_code=422)
        try:
            return _state(desk.submit(number, "his", **job))
        except DeskBusy as exc:
            return JSONResponse({"detail": str(exc), "current": exc.job.id}, status_code=409)

    @app.post("/his/v1/verifications", **starts)
    def start(body: StartVerification):
        shift = getattr(station, "shift", None)
        if shift is not None and shift.required and shift.operator() is None:
            return JSONResponse({"detail": "no clerk has signed in at this desk: sign in at the station "
                                           "with your finger or PIN", "reason": "no_shift"}, status_code=409)
        return queue(body.card, operator_id=body.operator_id, purpose=body.purpose.value)

    @app.post("/his/v1/enrollments", **starts)
    def enroll(body: StartEnrollment):
        """Enrollment on the kiosk screen: consent asked there, then the presses; follow it with GET
        /his/v1/enrollments/{id} (the same job as a verification's, `kind` "enrollment")."""
        request = EnrollRequest(
            body.username, body.password, tuple(body.fingers), body.impressions, body.delegate_id
        )
        return queue(body.card, operator_id=body.username, enrollment=request)

    one = {"response_model": VerificationState, "dependencies": guard, "responses": answers}

    @app.get("/his/v1/enrollments/{job_id}", operation_id="get_enrollment", **one)
    @app.get("/his/v1/verifications/{job_id}", operation_id="get_verification", **one)
    async def get(
        job_id: str,
        wait_s: float = Query(
            0, ge=0, le=600, description="Long poll: wait up to this many seconds (capped by his.max_wait_s)"
        ),
    ):
        job = job_or_404(job_id)
        if wait_s and job.state not in FINAL:
            await anyio.to_thread.run_sync(job.done.wait, min(wait_s, max_wait_s), abandon_on_cancel=True)
        return _state(job)

    @app.delete("/his/v1/enrollments/{job_id}", operation_id="cancel_enrollment", **one)
    @app.delete("/his/v1/verifications/{job_id}", operation_id="cancel_verification", **one)
    async def cancel(job_id: str):
        job = job_or_404(job_id)
        desk.cancel(job_id)
        await anyio.to_thread.run_sync(job.done.wait, 5.0, abandon_on_cancel=True)
        return _state(job)

    @app.get("/his/v1/status", dependencies=guard, responses={401: {"model": Problem}})
    def status() -> dict:
        online, pending = station.status()
        shift = getattr(station, "shift", None)
        return {
            "device_id": station.cfg.station.device_id,
            "busy": desk.busy(),
            "online": online,
            "pending_results": pending,
            "shift_required": bool(shift and shift.required),
            "operator": shift.operator() if shift else None,  # the clerk signed in, if any
        }

    return app


def openapi_document() -> str:
    """The API's description as committed in docs/his/openapi.json (no station needed)."""
    import json

    app = create_his_app(None, None, "x" * MIN_TOKEN)
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False, sort_keys=True)
