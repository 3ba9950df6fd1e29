"""Liveness for load balancers and the demo (no data)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

from fpverify.server import schemas
from fpverify.server.api.deps import SessionDep

router = APIRouter(tags=["health"])


@router.get("/health", response_model=schemas.Health)
def health(s: SessionDep, request: Request):
    try:
        s.execute(text("SELECT 1"))
        db_ok = True
    except Exception:  # noqa: BLE001 - health reports, never raises
        db_ok = False
    worker = getattr(request.app.state, "ingest", None)
    return schemas.Health(status="ok", database=db_ok, ingest={"running": worker.running, "connected": worker.connected,
                                                   "stored": worker.stats.stored} if worker else None)
