"""The HIS in the loop, end to end with real parts: HIS request -> the kiosk desk (simulated sensor on a
pty at 115200 baud, driven by the real pyfingerprint; the real matcher) -> outcome to the HIS -> the
signed result over mutual TLS through the shipped Mosquitto config -> the registry's ingest with its
signature check -> PostgreSQL: stored once, with the station's counter and signature."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import func, select

from fpverify.server.ingest.consumer import IngestWorker
from fpverify.server.models import VerificationRecord
from fpverify.server.ops.provision import provision_device
from fpverify.server.trust.verify import ResultVerifier
from tests.edge.helpers import HOLDER, STRANGER
from tests.edge.kiosk.helpers import HIS_TOKEN, KIOSK_TOML, close_desk, make_desk
from tests.server.trust.helpers import counts, registry_db, wait_until

pytestmark = pytest.mark.slow  # HIS -> station -> broker -> registry end to end


def test_his_request_to_signed_result_in_the_registry_once(
    pg_url,
    pki,
    secure_broker,
    tmp_path,
    fingers,
    matcher_feed,
):
    from fpverify.edge.sensor.simulator import SimulatedSensor

    db = registry_db(pg_url, secure_broker, pki)
    worker = IngestWorker(db, db.settings, verifier=ResultVerifier.for_registry(pki.dir)).start()
    sim = SimulatedSensor(baud=115200)
    sim.start()
    bundle = provision_device(
        pki.dir,
        "hosp-a",
        "desk-a",
        tmp_path / "bundles",
        None,
        secure_broker.host,
        secure_broker.port,
        cache_path=str(tmp_path / "desk-a.db"),
        replace=True,
    )
    cfg_path = bundle.config_path
    cfg_path.write_text(
        cfg_path.read_text() + f'\n[sensor]\nport = "{sim.path}"\nbaud = 115200\n' + KIOSK_TOML
    )
    desk = make_desk(cfg_path.parent, matcher_feed, cfg_path=cfg_path, sim=sim, mqtt=True)
    his = httpx.Client(base_url=desk.his, headers={"Authorization": f"Bearer {HIS_TOKEN}"}, timeout=60)
    try:
        assert worker.wait_ready(30)
        done = []
        for image, purpose in ((fingers[HOLDER][3], "admission"), (fingers[STRANGER][2], "billing")):
            desk.hand.queue(image)
            r = his.post(
                "/his/v1/verifications",
                json={"card": "CARD0042", "operator_id": "clerk-07", "purpose": purpose},
            )
            assert r.status_code == 201, r.text
            t0 = time.monotonic()
            state = his.get(f"/his/v1/verifications/{r.json()['id']}", params={"wait_s": 30}).json()
            assert state["state"] == "done" and time.monotonic() - t0 < 30
            done.append(state)
        assert [s["outcome"] for s in done] == ["match", "no_match"]
        assert all(s["result"]["signature"] and s["result"]["counter"] for s in done)

        wait_until(lambda: counts(db)[0] == 2, 60, "both results in the registry")
        time.sleep(1.0)  # a duplicate would land now
        with db.session() as s:
            for st in done:
                n = s.scalar(
                    select(func.count())
                    .select_from(VerificationRecord)
                    .where(VerificationRecord.result_id == st["result_id"])
                )
                row = s.scalar(
                    select(VerificationRecord).where(VerificationRecord.result_id == st["result_id"])
                )
                assert n == 1
                assert (row.outcome, row.purpose, row.operator_id) == (
                    st["outcome"],
                    st["result"]["purpose"],
                    "clerk-07",
                )
                assert (row.counter, row.signature) == (st["result"]["counter"], st["result"]["signature"])
        assert counts(db)[1] == 0  # nothing dead-lettered: the signatures verified
        assert his.get("/his/v1/status").json()["pending_results"] == 0
        wait_until(
            lambda: httpx.get(desk.url + "/state", timeout=10).json()["online"], 10, "page says online"
        )
    finally:
        his.close()
        close_desk(desk)
        worker.stop()
        db.dispose()
