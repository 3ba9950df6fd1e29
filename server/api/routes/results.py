"""Verification results and dead letters (insurance office). Alerts: routes/alerts.py."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from fpverify.server import schemas
from fpverify.server.api.deps import OfficeReader, Offset, SessionDep
from fpverify.server.crud import results as crud

router = APIRouter(tags=["results and alerts"])


@router.get("/results", response_model=list[schemas.ResultOut])
def list_results(user: OfficeReader, s: SessionDep, site_id: str | None = Query(default=None, max_length=64),
                 device_id: str | None = Query(default=None, max_length=64),
                 outcome: str | None = Query(default=None, max_length=20),
                 card_number: str | None = Query(default=None, max_length=32),
                 since: AwareDatetime | None = None, until: AwareDatetime | None = None,
                 limit: int = Query(default=100, ge=1, le=1000), offset: Offset = 0):
    return crud.list_results(s, site_id, device_id, outcome, card_number, since, until, limit, offset)


@router.get("/results/{result_id}", response_model=schemas.ResultOut)
def get_result(result_id: uuid.UUID, user: OfficeReader, s: SessionDep):
    return crud.get_result(s, result_id)


@router.get("/deadletters", response_model=list[schemas.DeadLetterOut])
def dead_letters(user: OfficeReader, s: SessionDep, limit: int = Query(default=100, ge=1, le=1000),
                 offset: Offset = 0):
    """Messages the ingest worker refused, with the reason (payload shown truncated)."""
    return [schemas.DeadLetterOut(id=d.id, received_at=d.received_at, topic=d.topic, reason=d.reason,
                                  payload_size=d.payload_size,
                                  payload_preview=d.payload[:200].decode("utf-8", errors="replace"))
            for d in crud.list_dead_letters(s, limit, offset)]
