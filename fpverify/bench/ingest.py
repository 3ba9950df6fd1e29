"""`fpverify bench ingest`: sustained results/s through a private Mosquitto into a private PostgreSQL.

Each repetition: fresh database (migrated), 50 registered devices, the ingest worker running; the
simulated stations publish every message with QoS 1 (valid results, re-sent duplicates, malformed
payloads) while the worker ingests. Rate = distinct results stored / (last stored - first message received by the registry).
Baseline in the same run: the same messages through the same broker to a subscriber that only
counts them (no validation, no database), i.e. the ceiling set by broker and client library.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select

console = Console(stderr=True)


def _publisher_process(port: int, messages, clients: int, version: str, prefix: str):
    """The stations publish from another process (as real stations would), not sharing our GIL."""
    import multiprocessing

    from fpverify.bench import loadgen

    proc = multiprocessing.get_context("spawn").Process(
        target=loadgen.publish, args=("127.0.0.1", port, messages),
        kwargs={"clients": clients, "version": version, "prefix": prefix}, daemon=True)
    proc.start()
    return proc


def _broker_baseline(port: int, messages, clients: int, version: str) -> float:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got = 0
    done = threading.Event()
    n = len(messages)

    first: list[float] = []

    def on_message(c, u, m):
        nonlocal got
        if not first:
            first.append(time.monotonic())
        got += 1
        if got >= n:
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"baseline-{uuid.uuid4().hex[:6]}",
                      protocol=mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311)
    sub.on_message = on_message
    ready = threading.Event()
    sub.on_subscribe = lambda *a: ready.set()
    sub.connect("127.0.0.1", port)
    sub.subscribe("fpverify/v1/devices/+/results", qos=1)
    sub.loop_start()
    ready.wait(10)
    t0 = time.monotonic()
    pub = _publisher_process(port, messages, clients, version, "baseline")
    done.wait(120)
    took = time.monotonic() - (first[0] if first else t0)
    pub.join()
    sub.disconnect()
    sub.loop_stop()
    return got / took


def _one_run(pg, broker, k: int, n_results: int, n_devices: int, duplicates: int, malformed: int, clients: int,
             version: str) -> dict:
    from fpverify.bench import loadgen
    from fpverify.server.core.config import Settings
    from fpverify.server.crud import devices as devices_crud
    from fpverify.server.db import Database
    from fpverify.server.ingest.consumer import IngestWorker
    from fpverify.server.models import DeadLetter, VerificationRecord

    url = pg.create_database(f"bench{k}")
    # Unsigned load (as the test stations send): development mode, so the writer has no verifier.
    settings = Settings(database_url=url, mqtt_port=broker.port, mqtt_version=version,
                        mqtt_client_id=f"registry-bench-{k}", mode="development")
    db = Database(settings=settings)
    db.migrate()
    devices = [f"bench-dev-{i:03d}" for i in range(n_devices)]
    with db.session() as s:
        for d in devices:
            devices_crud.create_device(s, "bench", "bench-site", d, create_site_if_missing=True)
        s.commit()
    load = loadgen.make_load(n_results, devices, "bench-site", duplicates, malformed, seed=k)
    worker = IngestWorker(db, settings).start()
    if not worker.wait_ready(30):
        raise RuntimeError("ingest worker did not connect")
    t0 = time.monotonic()
    pub = _publisher_process(broker.port, load.messages, clients, version, f"bench{k}")
    stored = dead = 0
    last_progress, last_stored = time.monotonic(), -1
    t_end = None
    while True:
        with db.session() as s:
            stored = s.scalar(select(func.count()).select_from(VerificationRecord))
            dead = s.scalar(select(func.count()).select_from(DeadLetter))
        now = time.monotonic()
        if stored >= len(load.valid_ids) and dead >= malformed:
            t_end = now
            break
        if stored != last_stored:
            last_stored, last_progress = stored, now
        elif now - last_progress > 60:
            break  # stalled: report what was lost
        time.sleep(0.05)
    pub.join()
    with db.session() as s:
        ids = set(s.scalars(select(VerificationRecord.result_id)))
    worker_ok = worker.running
    worker.stop()
    db.dispose()
    # Sustained rate: from the first message reaching the registry to the last result committed
    # (excludes the publisher process's start-up).
    start = worker.stats.first_message_at or t0
    took = (t_end or time.monotonic()) - start
    return {"results_per_s": len(ids) / took, "messages_per_s": len(load.messages) / took,
            "sent": len(load.valid_ids), "stored": len(ids & load.valid_ids), "lost": len(load.valid_ids - ids),
            "unexpected": len(ids - load.valid_ids), "dead_lettered": dead, "malformed_sent": malformed,
            "messages": len(load.messages), "seconds": took, "worker_running": worker_ok,
            "batches": worker.stats.batches}


def run_ingest_bench(out: Path, n_results: int = 20000, n_devices: int = 50, duplicates: int = 1000,
                     malformed: int = 100, clients: int = 5, version: str = "5", repeat: int = 3) -> dict:
    from fpverify.bench import loadgen
    from fpverify.services import PrivateMosquitto, PrivatePostgres

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fpverify-bench-"))
    pg = PrivatePostgres(work / "pg")
    broker = PrivateMosquitto(work / "mqtt")
    runs = []
    try:
        with console.status("starting PostgreSQL and Mosquitto"):
            pg.start()
            broker.start()
        with console.status("baseline: broker only"):
            base_load = loadgen.make_load(n_results, [f"bench-dev-{i:03d}" for i in range(n_devices)], "bench-site",
                                          duplicates, malformed, seed=99)
            baseline = _broker_baseline(broker.port, base_load.messages, clients, version)
        for k in range(repeat):
            # A fresh broker per run: the previous run's persistent registry session would otherwise
            # keep its share of the shared subscription's messages queued for itself.
            broker.stop()
            broker = PrivateMosquitto(work / f"mqtt{k}").start()
            with console.status(f"run {k + 1}/{repeat}: {n_results} results from {n_devices} devices"):
                runs.append(_one_run(pg, broker, k, n_results, n_devices, duplicates, malformed, clients, version))
            console.print(f"run {k + 1}: {runs[-1]['results_per_s']:.0f} results/s, lost {runs[-1]['lost']}")
    finally:
        broker.stop()
        pg.stop()
    median = statistics.median(r["results_per_s"] for r in runs)
    result = {"results_per_s": round(median, 1), "sent": sum(r["sent"] for r in runs),
              "stored": sum(r["stored"] for r in runs), "lost": sum(r["lost"] for r in runs),
              "dead_lettered": sum(r["dead_lettered"] for r in runs),
              "malformed_sent": sum(r["malformed_sent"] for r in runs),
              "broker_only_msgs_per_s": round(baseline, 1),
              "messages_per_s_median": round(statistics.median(r["messages_per_s"] for r in runs), 1),
              "ratio_to_broker_only": round(statistics.median(r["messages_per_s"] for r in runs) / baseline, 3),
              "runs": runs, "mqtt_version": version, "devices": n_devices, "clients": clients,
              "postgres": "private cluster, default durability (fsync on)"}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    lines = [
        "# bench ingest", "",
        f"Simulated stations ({n_devices} devices, {clients} publishing connections, MQTT {version}, QoS 1) -> "
        "private Mosquitto -> ingest worker -> private PostgreSQL (fsync on).", "",
        f"Per run: {n_results} distinct results + {duplicates} re-sent duplicates + {malformed} malformed payloads "
        "(unsigned, UUIDv7 ids, scores on the matcher's 0..1 scale; registry in development mode, so no "
        "signature checks are measured).", "",
        "| run | results/s | messages/s | stored | lost | dead-lettered | batches |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs, 1):
        lines.append(f"| {i} | {r['results_per_s']:.0f} | {r['messages_per_s']:.0f} | {r['stored']} | {r['lost']} | "
                     f"{r['dead_lettered']} | {r['batches']} |")
    lines += ["", f"**Median: {median:.0f} results/s**, lost {result['lost']} of {result['sent']}.", "",
              f"Baseline (same broker, same messages, counting subscriber, no DB): {baseline:.0f} messages/s; "
              f"ingest reaches {result['ratio_to_broker_only']:.0%} of it.", "",
              "Command: `fpverify bench ingest --out DIR`"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return result
