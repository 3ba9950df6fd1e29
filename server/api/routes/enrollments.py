"""Enrollment uploads from stations (operator token, role enroller)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from fpverify.edge import wire
from fpverify.server import schemas
from fpverify.server.api.deps import Enroller, PersonalReader, SessionDep
from fpverify.server.crud import holders as crud
from fpverify.server.crud.errors import NotFound
from fpverify.server.models import Enrollment

router = APIRouter(prefix="/enrollments", tags=["stations"])


@router.post("", response_model=schemas.EnrollmentOut, status_code=201,
             responses={409: {"description": "card holder not registered or no consent on file"}})
def upload(body: wire.EnrollmentUpload, user: Enroller, s: SessionDep, request: Request):
    """Store an enrollment. A 1:N hit on another card holder holds it as `pending_review` until two
    supervisors approve the override_duplicate approval. Idempotent by `enrollment_id`."""
    checker = request.app.state.duplicate_checker
    out = crud.enroll(s, user.username, body, checker, request.app.state.template_validator,
                      cohort_size=request.app.state.settings.cohort_size)
    s.commit()
    return out


@router.get("/{enrollment_id}", response_model=schemas.EnrollmentOut)
def get_enrollment(enrollment_id: str, user: PersonalReader, s: SessionDep):
    e = s.get(Enrollment, enrollment_id)
    if e is None:
        raise NotFound("no such enrollment")
    return crud.enrollment_response(s, e)
