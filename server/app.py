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
from fpverify.server.api.main import OPENAPI_URL, api_router, mount_docs
from fpverify.server.core.config import Settings, get_settings
from fpverify.server.core.security import set_password_cost
from fpverify.server.crud.errors import DomainError
from fpverify.server.db import Database

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, db: Database | None = None, start_ingest: bool = False) -> FastAPI:
    settings = settings or get_settings()
    settings.check_for_production()  # ConfigError naming the setting, before anything is served
    set_password_cost(settings.password_time_cost, settings.password_memory_kib)
    db = db or Database(settings=settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_ingest:
            from fpverify.server.ingest.consumer import IngestWorker

            worker = IngestWorker(db, settings)  # verifier from the settings' mode and CA folder
            watch_broker(worker.client, settings)
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
        openapi_url=OPENAPI_URL,  # also at {api_prefix}/openapi.json; the docs pages: mount_docs below
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.ingest = None
    app.state.duplicate_checker = partial(_check_duplicate, settings.duplicate_threshold,
                                          settings.duplicate_threshold_score)
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
    mount_docs(app, settings.api_prefix)
    from fpverify.server.dashboard import mount as mount_dashboard  # the insurance office's pages, /dashboard

    mount_dashboard(app)
    return app


def _check_duplicate(threshold_name: str, threshold_score: float | None, s, card_number: str, probes: list[bytes]):
    return dedup.find_duplicate(s, card_number, probes, threshold_name, threshold_score)


def watch_broker(client, settings: Settings) -> None:
    """Say clearly, on every failed attempt, that the broker cannot be reached (paho keeps retrying,
    1 s doubling to 30 s), and once when it is reached again. Results wait meanwhile in the
    stations' outboxes and the broker's persistent session: nothing is lost, but nothing arrives."""
    failures = 0
    on_connect = client.on_connect

    def on_connect_fail(_client, _userdata) -> None:
        nonlocal failures
        failures += 1
        log.error("MQTT broker unreachable at %s:%d (attempt %d; check FPVERIFY_MQTT_HOST, FPVERIFY_MQTT_PORT, "
                  "FPVERIFY_MQTT_TLS_*); results are not ingested until it answers; retrying",
                  settings.mqtt_host, settings.mqtt_port, failures)

    def connected(*args, **kwargs) -> None:
        nonlocal failures
        if failures:
            log.warning("MQTT broker at %s:%d reached after %d failed attempts", settings.mqtt_host,
                        settings.mqtt_port, failures)
            failures = 0
        on_connect(*args, **kwargs)

    client.on_connect_fail = on_connect_fail
    client.on_connect = connected
