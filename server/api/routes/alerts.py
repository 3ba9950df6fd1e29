"""Alerts for the insurance office: auditors read, supervisors acknowledge, add notes and resolve.
Every note is kept (who, when, what) and returned with its alert."""

from __future__ import annotations

from fastapi import APIRouter, Query

from fpverify.server import schemas
from fpverify.server.api.deps import IntId, OfficeReader, Offset, SessionDep, Supervisor
from fpverify.server.crud import alerts as crud
from fpverify.server.models import Alert, AlertStatus

router = APIRouter(prefix="/alerts", tags=["results and alerts"])


def _out(s, alerts: list[Alert]) -> list[schemas.AlertOut]:
    notes = crud.notes_of(s, [a.id for a in alerts])
    return [schemas.AlertOut.model_validate(a).model_copy(
        update={"notes": [schemas.AlertNoteOut.model_validate(n) for n in notes.get(a.id, [])]}) for a in alerts]


@router.get("", response_model=list[schemas.AlertOut])
def list_alerts(user: OfficeReader, s: SessionDep, status: AlertStatus | None = None,
                site_id: str | None = Query(default=None, max_length=64),
                limit: int = Query(default=100, ge=1, le=1000), offset: Offset = 0):
    return _out(s, crud.list_alerts(s, status, site_id, limit, offset))


@router.get("/{alert_id}", response_model=schemas.AlertOut)
def get_alert(alert_id: IntId, user: OfficeReader, s: SessionDep):
    return _out(s, [crud.get_alert(s, alert_id)])[0]


@router.post("/{alert_id}/acknowledge", response_model=schemas.AlertOut)
def acknowledge(alert_id: IntId, body: schemas.CommentIn, user: Supervisor, s: SessionDep):
    a = crud.acknowledge_alert(s, user.username, alert_id, body.comment)
    s.commit()
    return _out(s, [a])[0]


@router.post("/{alert_id}/notes", response_model=schemas.AlertOut, status_code=201)
def add_note(alert_id: IntId, body: schemas.NoteIn, user: Supervisor, s: SessionDep):
    crud.add_note(s, user.username, alert_id, body.text)
    s.commit()
    return _out(s, [crud.get_alert(s, alert_id)])[0]


@router.post("/{alert_id}/resolve", response_model=schemas.AlertOut)
def resolve(alert_id: IntId, body: schemas.ResolveIn, user: Supervisor, s: SessionDep):
    a = crud.resolve_alert(s, user.username, alert_id, body.comment)
    s.commit()
    return _out(s, [a])[0]
