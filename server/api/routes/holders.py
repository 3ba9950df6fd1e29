"""Card holders, consents, delegates and template metadata (personal data: never sysadmin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select

from fpverify.server import schemas
from fpverify.server.api.deps import (
    Enroller,
    Offset,
    PersonalReader,
    SessionDep,
    SettingsDep,
    Supervisor,
    require,
)
from fpverify.server.crud import holders as crud
from fpverify.server.models import Delegate, HolderStatus, Role, Template, TemplateStatus, User

router = APIRouter(prefix="/cardholders", tags=["card holders"])
CARD = r"^[A-Za-z0-9-]{4,32}$"


@router.get("", response_model=list[schemas.HolderOut])
def list_holders(user: PersonalReader, s: SessionDep, q: str | None = Query(default=None, max_length=64),
                 status: HolderStatus | None = None, limit: int = Query(default=100, ge=1, le=1000),
                 offset: Offset = 0):
    return crud.list_holders(s, q, status, limit, offset)


@router.post("", response_model=schemas.HolderOut, status_code=201)
def create_holder(body: schemas.HolderIn, user: Enroller, s: SessionDep, settings: SettingsDep):
    h = crud.create_holder(s, user.username, settings.national_id_key.get_secret_value(), body.card_number,
                           body.name, body.national_id)
    s.commit()
    return h


@router.get("/{card_number}", response_model=schemas.HolderDetail)
def get_holder(card_number: str, user: PersonalReader, s: SessionDep):
    h = crud.get_holder(s, card_number)
    active = s.scalar(select(func.count()).select_from(Template).where(
        Template.card_number == card_number, Template.status == TemplateStatus.ACTIVE))
    dels = s.scalar(select(func.count()).select_from(Delegate).where(Delegate.card_number == card_number))
    return schemas.HolderDetail(**schemas.HolderOut.model_validate(h).model_dump(),
                                consent_active=crud.active_consent(s, card_number) is not None,
                                templates_active=active or 0, delegates=dels or 0)


@router.post("/{card_number}/block", response_model=schemas.HolderOut)
def block(card_number: str, body: schemas.BlockIn, user: Supervisor, s: SessionDep):
    """Block a card at once (stations learn it from the feed). Unblocking needs two supervisors."""
    h = crud.set_status(s, user.username, card_number, HolderStatus.BLOCKED, note=body.reason[:200])
    s.commit()
    return h


@router.get("/{card_number}/consents", response_model=list[schemas.ConsentOut])
def list_consents(card_number: str, user: PersonalReader, s: SessionDep):
    return crud.list_consents(s, card_number)


@router.post("/{card_number}/consents", response_model=schemas.ConsentOut, status_code=201)
def record_consent(card_number: str, body: schemas.ConsentIn, user: Enroller, s: SessionDep):
    """Record the holder's separate consent to biometric processing (PIPL)."""
    c = crud.record_consent(s, user.username, card_number, body.given_at, body.scope, body.witnessed_by)
    s.commit()
    return c


@router.post("/{card_number}/consents/withdraw", response_model=schemas.WithdrawOut)
def withdraw_consent(card_number: str, s: SessionDep,
                     user: Annotated[User, Depends(require(Role.ENROLLER, Role.SUPERVISOR))]):
    """Withdraw the biometric consent: every template of the card is purged and stations told."""
    c, purged = crud.withdraw_consent(s, user.username, card_number)
    s.commit()
    return schemas.WithdrawOut(consent=schemas.ConsentOut.model_validate(c), templates_purged=purged)


@router.get("/{card_number}/delegates", response_model=list[schemas.DelegateOut])
def list_delegates(card_number: str, user: PersonalReader, s: SessionDep):
    return crud.list_delegates(s, card_number)


@router.post("/{card_number}/delegates", response_model=schemas.DelegateOut, status_code=201)
def add_delegate(card_number: str, body: schemas.DelegateIn, user: Enroller, s: SessionDep, settings: SettingsDep):
    d = crud.add_delegate(s, user.username, settings.national_id_key.get_secret_value(), card_number, body.name,
                          body.national_id, body.valid_from, body.valid_until, body.relation)
    s.commit()
    return d


@router.get("/{card_number}/templates", response_model=list[schemas.TemplateMeta])
def list_templates(card_number: str, user: PersonalReader, s: SessionDep):
    """Metadata of every template of the card; never the template bytes."""
    return crud.list_templates(s, card_number)
