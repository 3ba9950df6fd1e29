"""The demo's settings of its stations and its registry: everything the demo changes, it changes
through their configuration (edge.config.EdgeConfig, server.core.config.Settings), never in place
in another module.

The decision threshold is stricter than the matcher's. matcher.THRESHOLDS are measured on real
fingerprints; synthetic fingers resemble each other more, so at those points the 1:N duplicate
check would hold most demo enrollments and strangers could pass as holders. Measured on the
demo's 19 synthetic fingers pressed through the simulated sensor's 288x256 window (4 bits a
pixel), best of 3 enrolled templates: impostors <= 0.251 (684 pairs, 99th percentile 0.209);
genuine minimum 0.273, 5th percentile 0.399, so about 1-3 % of honest presses are still refused
(a real no_match, which the demo then shows as such).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

OPERATING_POINT = "fmr_1e-4"
DEMO_THRESHOLD = 0.28
# Enrollment's 1:N duplicate check compares enrollment presses (different fingers: <= 0.218 in the
# same measurement; the same finger: median 0.62): a stricter point.
DEMO_DUPLICATE_THRESHOLD = 0.32


def decision_threshold() -> tuple[float, str | None]:
    """(the stations' decision score, a note for the summary when it is not the matcher's own)."""
    from fpverify.matcher import THRESHOLDS

    measured = float(THRESHOLDS[OPERATING_POINT])
    if measured >= DEMO_THRESHOLD:
        return measured, None
    return DEMO_THRESHOLD, (f"synthetic fingers: the demo decides at score {DEMO_THRESHOLD} instead of the "
                            f"matcher's {OPERATING_POINT} = {measured:g} (measured on real fingerprints)")


def station_config(device_id: str, site_id: str, purpose: str, folder: Path, sensor_port: str, registry_url: str,
                   mqtt_port: int, mqtt_version: str):
    """A station's EdgeConfig; its secrets are in `folder` (cache.key, device.token)."""
    from fpverify.edge.config import EdgeConfig

    return EdgeConfig.model_validate({
        "station": {"device_id": device_id, "site_id": site_id, "purpose": purpose,
                    "threshold": OPERATING_POINT, "threshold_score": decision_threshold()[0],
                    "min_quality": 40, "max_attempts": 3, "capture_wait_s": 3.0},
        "sensor": {"port": sensor_port, "timeout_s": 2.0},
        "cache": {"path": str(folder / "station.db"), "key": {"file": str(folder / "cache.key")}},
        "registry": {"url": registry_url, "device_token": {"file": str(folder / "device.token")},
                     "sync_interval_s": 3.0, "timeout_s": 10.0},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "version": mqtt_version, "keepalive_s": 5,
                 "reconnect_min_s": 0.3, "reconnect_max_s": 2.0, "resend_after_s": 15.0},
    })


def registry_settings(database_url: str, port: int, broker_port: int, mqtt_version: str, **overrides: Any):
    """The registry's Settings in demo mode (unsigned results accepted, every dashboard page says
    so): the demo's database and broker, a fresh national-id key each run."""
    from fpverify.server.core.config import Settings

    return Settings(
        mode="demo", database_url=database_url, api_port=port, mqtt_enabled=True, mqtt_host="127.0.0.1", mqtt_port=broker_port,
        mqtt_version=mqtt_version, mqtt_client_id=f"fpverify-registry-demo-{os.getpid()}",
        national_id_key=os.urandom(16).hex(), ingest_batch_wait_ms=20,
        duplicate_threshold=OPERATING_POINT, duplicate_threshold_score=DEMO_DUPLICATE_THRESHOLD, **overrides)
