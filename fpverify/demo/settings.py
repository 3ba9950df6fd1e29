"""The demo's settings of its stations and its registry: everything the demo changes, it changes
through their configuration (edge.config.EdgeConfig, server.core.config.Settings), never in place
in another module.

The stations decide at the matcher's shipped operating point (`OPERATING_POINT`, raised for the
number of templates a card compares, as every station does), and the registry's duplicate check
at the same point: the synthetic fingers are as varied as real ones at the shipped points
(docs/synth.md, "bench synth"). Measured on the demo's 19 synthetic fingers pressed through the
simulated sensor's 288x256 window (4 bits a pixel), enrolled with impressions 0-2, probes 3-4,
best of 3: impostors at most 0.175, 0 of 684 at `decision_threshold("fmr_1e-4", 3)` = 0.2319;
genuine minimum 0.523 (0 of 38 below); enrollment presses against another finger's at most 0.161,
below the duplicate check's threshold (at least 0.2513, rising with the gallery).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

OPERATING_POINT = "fmr_1e-4"


def station_config(device_id: str, site_id: str, purpose: str, folder: Path, sensor_port: str, registry_url: str,
                   mqtt_port: int, mqtt_version: str):
    """A station's EdgeConfig; its secrets are in `folder` (cache.key, device.token)."""
    from fpverify.edge.config import EdgeConfig

    return EdgeConfig.model_validate({
        "station": {"device_id": device_id, "site_id": site_id, "purpose": purpose,
                    "threshold": OPERATING_POINT,
                    "min_quality": 40, "max_attempts": 3, "capture_wait_s": 3.0},
        "sensor": {"port": sensor_port, "timeout_s": 2.0},
        "cache": {"path": str(folder / "station.db"), "key": {"file": str(folder / "cache.key")}},
        "registry": {"url": registry_url, "device_token": {"file": str(folder / "device.token")},
                     "sync_interval_s": 3.0, "timeout_s": 10.0},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "version": mqtt_version, "keepalive_s": 5,
                 "reconnect_min_s": 0.3, "reconnect_max_s": 2.0, "resend_after_s": 15.0},
        # Each desk's screen, as a real station serves it: localhost, Chinese first; port 0 = a free
        # one (three desks in one process), known once the page is up (DemoStation.kiosk_url).
        "kiosk": {"enabled": True, "host": "127.0.0.1", "port": 0, "language": "zh_CN"},
    })


def registry_settings(database_url: str, port: int, broker_port: int, mqtt_version: str, **overrides: Any):
    """The registry's Settings in demo mode (unsigned results accepted, every dashboard page says
    so): the demo's database and broker, a fresh national-id key each run."""
    from fpverify.server.core.config import Settings

    return Settings(
        mode="demo", database_url=database_url, api_port=port, mqtt_enabled=True, mqtt_host="127.0.0.1", mqtt_port=broker_port,
        mqtt_version=mqtt_version, mqtt_client_id=f"fpverify-registry-demo-{os.getpid()}",
        national_id_key=os.urandom(16).hex(), ingest_batch_wait_ms=20,
        duplicate_threshold=OPERATING_POINT, **overrides)
