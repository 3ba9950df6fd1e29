"""Inpatient stays and the overdue bedside re-check list."""

from __future__ import annotations

from fastapi import APIRouter, Query

from fpverify.server import schemas
from fpverify.server.api.deps import Enroller, IntId, PersonalReader, SessionDep, SettingsDep
from fpverify.server.crud import stays as crud

router = APIRouter(prefix="/stays", tags=["inpatients"])


@router.get("", response_model=list[schemas.StayOut])
def list_stays(user: PersonalReader, s: SessionDep, site_id: str | None = Query(default=None, max_length=64),
               current_only: bool = True):
    return crud.list_stays(s, site_id, current_only)


@router.post("", response_model=schemas.StayOut, status_code=201)
def admit(body: schemas.StayIn, user: Enroller, s: SessionDep, settings: SettingsDep):
    stay = crud.admit(s, user.username, body.card_number, body.site_id, body.admitted_at, body.ward, body.bed,
                      body.recheck_interval_hours or settings.bedside_recheck_hours)
    s.commit()
    return stay


@router.get("/overdue", response_model=list[schemas.OverdueOut])
def overdue(user: PersonalReader, s: SessionDep, site_id: str | None = Query(default=None, max_length=64)):
    """Current inpatients whose last bedside verification is older than their re-check interval."""
    return [schemas.OverdueOut(stay=schemas.StayOut.model_validate(o.stay), last_check=o.last_check,
                               due_at=o.due_at, hours_overdue=round(o.hours_overdue, 2))
            for o in crud.overdue(s, site_id=site_id)]


@router.post("/{stay_id}/discharge", response_model=schemas.StayOut)
def discharge(stay_id: IntId, body: schemas.DischargeIn, user: Enroller, s: SessionDep):
    stay = crud.discharge(s, user.username, stay_id, body.discharged_at)
    s.commit()
    return stay
