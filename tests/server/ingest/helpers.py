"""A migrated registry database with registered devices, for the ingest tests."""

from __future__ import annotations

from fpverify.server.crud import devices as devices_crud
from fpverify.server.db import Database
from tests.server.helpers import make_settings


def migrated_db(url: str, devices: list[str], site: str = "site-1", **settings) -> Database:
    db = Database(settings=make_settings(url, **settings))
    db.migrate()
    with db.session() as s:
        for d in devices:
            devices_crud.create_device(s, "test", site, d, create_site_if_missing=True)
        s.commit()
    return db


def run_worker(url: str, client_id: str, settings: dict, ready=None) -> None:
    """An ingest worker in a process of its own, until it is killed (the worker-pool test); sets
    `ready` (a multiprocessing Event) once it consumes."""
    import time

    from fpverify.server.ingest.consumer import IngestWorker

    db = Database(settings=make_settings(url, **settings))
    worker = IngestWorker(db, db.settings, client_id=client_id).start()
    if ready is not None and worker.wait_ready(120):
        ready.set()
    while True:
        time.sleep(1)
