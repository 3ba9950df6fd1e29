"""FastAPI application factory. `create_app()` wires settings, database, duplicate checker and
(optionally) the MQTT ingest worker, which also publishes template-feed notifications."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from fpverify.server import dedup
from fpverify.server.api.main import api_router
from fpverify.server.core.config import Settings, get_settings
from fpverify.server.crud.errors import DomainError
from fpverify.server.db import Database

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, db: Database | None = None, start_ingest: bool = False) -> FastAPI:
    settings = settings or get_settings()
    db = db or Database(settings=settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_ingest:
            from fpverify.server.ingest.worker import IngestWorker

            verifier = None
            if settings.ca_dir is not None:
                from fpverify.server.trust.verify import ResultVerifier

                verifier = ResultVerifier.for_registry(
                    settings.ca_dir, db.sessionmaker, window=settings.replay_window,
                    require_signature=settings.require_signed_results)
            worker = IngestWorker(db, settings, verifier=verifier)
            worker.start()
            app.state.ingest = worker
            db.notifier = worker.notifier
        try:
            yield
        finally:
            worker = app.state.ingest
            if worker is not None:
                worker.stop()
                db.notifier = None

    app = FastAPI(
        title="fpverify registry",
        version="1",
        description="Card holders, enrollments, template feed, verification results, alerts and audit.",
        openapi_url=f"{settings.api_prefix}/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.ingest = None
    app.state.duplicate_checker = partial(_check_duplicate, settings.duplicate_threshold)
    app.state.template_validator = dedup.validate_template if settings.validate_templates else None

    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)

    @app.exception_handler(DataError)
    async def data_error(_request: Request, exc: DataError) -> JSONResponse:
        # e.g. a NUL character or an out-of-range number the database refuses: the client's fault
        log.info("database refused a value: %s", exc.orig)
        return JSONResponse({"detail": "a value cannot be stored (out of range or invalid characters)"},
                            status_code=422)

    app.include_router(api_router, prefix=settings.api_prefix)
    from fpverify.server.dashboard import mount as mount_dashboard  # the insurance office's pages, /dashboard

    mount_dashboard(app)
    return app


def _check_duplicate(threshold_name: str, s, card_number: str, probes: list[bytes]):
    return dedup.find_duplicate(s, card_number, probes, threshold_name)
