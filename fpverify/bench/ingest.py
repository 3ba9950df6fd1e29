"""`fpverify bench ingest`: sustained results/s from simulated stations into a private PostgreSQL.

Each repetition: fresh database (migrated), registered devices, the ingest worker(s) running; the
simulated stations publish every message with QoS 1 (valid results, re-sent duplicates, malformed
payloads) like a station's outbox (loadgen.publish_reliably) while the workers ingest.
Rate = distinct results stored / (last stored - first message received by the registry).
Latency = the result's `received_at` (set in the transaction that stores it) minus the moment the
station first published it, median over every stored result.

`--broker mosquitto --workers 1` is the single-machine default. With `--broker rabbitmq` (MQTT
plugin -> quorum queue -> AMQP workers, server/ingest/amqp.py) or `--workers` above 1, the same
run first measures that default as the baseline, so the ratio compares like with like. The
broker-only figure (Mosquitto -> a subscriber that only counts) is the ceiling of broker and client
library.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select

console = Console(stderr=True)
BROKERS = ("mosquitto", "rabbitmq")


def _publisher_process(port: int, messages, clients: int, version: str, prefix: str, times_out: str | None = None):
    """The stations publish from another process (as real stations would), not sharing our GIL."""
    import multiprocessing

    from fpverify.bench import loadgen

    proc = multiprocessing.get_context("spawn").Process(
        target=loadgen.publish_reliably, args=("127.0.0.1", port, messages),
        kwargs={"clients": clients, "version": version, "prefix": prefix, "times_out": times_out}, daemon=True)
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


def _latencies_ms(db, load, times_file: Path) -> list[float]:
    """Per stored result: received_at - first publish (wall clocks of this one machine)."""
    from fpverify.server.models import VerificationRecord

    sent_at = json.loads(times_file.read_text()) if times_file.exists() else []
    index = {}
    for i, (_topic, payload) in enumerate(load.messages):
        try:
            rid = json.loads(payload)["result_id"]
        except (ValueError, KeyError, TypeError):
            continue  # malformed
        index.setdefault(rid, i)
    out = []
    with db.session() as s:
        for rid, received in s.execute(select(VerificationRecord.result_id, VerificationRecord.received_at)):
            i = index.get(str(rid))
            if i is None or i >= len(sent_at) or sent_at[i] is None:
                continue
            at = received if received.tzinfo else received.replace(tzinfo=UTC)
            out.append((at - datetime.fromtimestamp(sent_at[i], UTC)).total_seconds() * 1000)
    return out


def _one_run(pg, broker, kind: str, workers: int, k: int, n_results: int, n_devices: int, duplicates: int,
             malformed: int, clients: int, version: str, work: Path) -> dict:
    from fpverify.bench import loadgen
    from fpverify.server.core.config import Settings
    from fpverify.server.crud import devices as devices_crud
    from fpverify.server.db import Database
    from fpverify.server.ingest.consumer import IngestWorker
    from fpverify.server.models import DeadLetter, VerificationRecord

    url = pg.create_database(f"bench_{kind}_{workers}_{k}")
    # Unsigned load (as the test stations send): development mode, so the writer has no verifier.
    extra = {"ingest_broker": "rabbitmq", "ingest_amqp_url": broker.amqp_url} if kind == "rabbitmq" else \
        {"mqtt_shared_subscription": workers > 1}
    settings = Settings(database_url=url, mqtt_port=broker.port, mqtt_version=version,
                        mqtt_client_id=f"registry-bench-{k}", mode="development",
                        ingest_queue=f"fpverify.ingest.bench{k}", **extra)
    db = Database(settings=settings)
    db.migrate()
    devices = [f"bench-dev-{i:03d}" for i in range(n_devices)]
    with db.session() as s:
        for d in devices:
            devices_crud.create_device(s, "bench", "bench-site", d, create_site_if_missing=True)
        s.commit()
    load = loadgen.make_load(n_results, devices, "bench-site", duplicates, malformed, seed=k)
    pool = [IngestWorker(db, settings, client_id=f"registry-bench-{k}-{w}").start() for w in range(workers)]
    if not all(w.wait_ready(60) for w in pool):
        raise RuntimeError(f"ingest workers did not connect to {kind}: {[w.stats.last_error for w in pool]}")
    times_file = work / f"sent-{kind}-{workers}-{k}.json"
    t0 = time.monotonic()
    pub = _publisher_process(broker.port, load.messages, clients, version, f"bench{k}", str(times_file))
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
        rows = s.scalar(select(func.count()).select_from(VerificationRecord))
    latencies = _latencies_ms(db, load, times_file)
    workers_ok = all(w.running for w in pool)
    for w in pool:
        w.stop()
    db.dispose()
    # Sustained rate: from the first message reaching the registry to the last result committed
    # (excludes the publisher process's start-up).
    start = min((w.stats.first_message_at for w in pool if w.stats.first_message_at), default=t0)
    took = (t_end or time.monotonic()) - start
    return {"results_per_s": len(ids) / took, "messages_per_s": len(load.messages) / took,
            "sent": len(load.valid_ids), "stored": len(ids & load.valid_ids), "lost": len(load.valid_ids - ids),
            "rows": rows, "unexpected": len(ids - load.valid_ids), "dead_lettered": dead,
            "malformed_sent": malformed, "messages": len(load.messages), "seconds": took,
            "latency_ms_median": statistics.median(latencies) if latencies else None,
            "latency_ms_p95": statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 20 else None,
            "latency_samples": len(latencies), "workers_running": workers_ok,
            "stored_by_worker": [w.stats.stored for w in pool], "batches": sum(w.stats.batches for w in pool)}


def _start(kind: str, work: Path, k: int):
    from fpverify.services import PrivateMosquitto, PrivateRabbitMQ

    if kind == "rabbitmq":
        return PrivateRabbitMQ(work / f"rabbitmq{k}").start()
    return PrivateMosquitto(work / f"mqtt{k}").start()


def _series(pg, kind: str, workers: int, version: str, work: Path, repeat: int, **load) -> dict:
    runs = []
    for k in range(repeat):
        # A fresh broker per run: a previous run's persistent sessions or queue keep nothing here.
        broker = _start(kind, work, k)
        try:
            with console.status(f"{kind}, {workers} worker(s): run {k + 1}/{repeat}"):
                runs.append(_one_run(pg, broker, kind, workers, k, version=version, work=work, **load))
        finally:
            broker.stop()
        r = runs[-1]
        console.print(f"{kind} x{workers} run {k + 1}: {r['results_per_s']:.0f} results/s, "
                      f"latency {r['latency_ms_median'] or 0:.0f} ms, lost {r['lost']}")
    lat = [r["latency_ms_median"] for r in runs if r["latency_ms_median"] is not None]
    return {"broker": kind, "workers": workers, "mqtt_version": version,
            "results_per_s": round(statistics.median(r["results_per_s"] for r in runs), 1),
            "latency_ms_median": round(statistics.median(lat), 1) if lat else None,
            "sent": sum(r["sent"] for r in runs), "stored": sum(r["stored"] for r in runs),
            "rows": sum(r["rows"] for r in runs), "lost": sum(r["lost"] for r in runs),
            "dead_lettered": sum(r["dead_lettered"] for r in runs),
            "malformed_sent": sum(r["malformed_sent"] for r in runs), "runs": runs}


def run_ingest_bench(out: Path, n_results: int = 20000, n_devices: int = 50, duplicates: int = 1000,
                     malformed: int = 100, clients: int = 5, version: str = "5", repeat: int = 3,
                     workers: int = 1, broker: str = "mosquitto") -> dict:
    from fpverify.bench import loadgen
    from fpverify.services import PrivateMosquitto, PrivatePostgres

    if broker not in BROKERS:
        raise ValueError(f"unknown broker {broker!r}: {' or '.join(BROKERS)}")
    if workers < 1:
        raise ValueError("--workers must be at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fpverify-bench-"))
    pg = PrivatePostgres(work / "pg")
    load = {"n_results": n_results, "n_devices": n_devices, "duplicates": duplicates, "malformed": malformed,
            "clients": clients}
    default = broker == "mosquitto" and workers == 1
    try:
        with console.status("starting PostgreSQL and Mosquitto"):
            pg.start()
            mq = PrivateMosquitto(work / "mqtt-baseline").start()
        try:
            with console.status("baseline: broker only"):
                base_load = loadgen.make_load(n_results, [f"bench-dev-{i:03d}" for i in range(n_devices)],
                                              "bench-site", duplicates, malformed, seed=99)
                broker_only = _broker_baseline(mq.port, base_load.messages, clients, version)
        finally:
            mq.stop()
        baseline = _series(pg, "mosquitto", 1, version, work, repeat, **load)
        # RabbitMQ 3.10's MQTT plugin speaks 3.1.1 only
        measured = baseline if default else _series(pg, broker, workers, "3.1.1" if broker == "rabbitmq" else version,
                                                    work, repeat, **load)
    finally:
        pg.stop()
    result = {**{k: v for k, v in measured.items() if k != "runs"},
              "ratio_to_baseline": round(measured["results_per_s"] / baseline["results_per_s"], 3),
              "broker_only_msgs_per_s": round(broker_only, 1),
              "baseline": baseline, "measured": measured, "devices": n_devices, "clients": clients,
              "repeat": repeat, "postgres": "private cluster, default durability (fsync on)"}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "report.md").write_text(_report(result, load, broker, workers))
    return result


def _report(result: dict, load: dict, broker: str, workers: int) -> str:
    lines = [
        "# bench ingest", "",
        f"Simulated stations ({load['n_devices']} devices, {load['clients']} publishing connections, QoS 1, "
        "publishing like the outbox) -> broker -> ingest worker(s) -> private PostgreSQL (fsync on).", "",
        f"Per run: {load['n_results']} distinct results + {load['duplicates']} re-sent duplicates + "
        f"{load['malformed']} malformed payloads (unsigned; registry in development mode, so no signature "
        "checks are measured). Each line below is the median of its runs.", "",
        "| setup | runs | results/s (median) | latency publish->stored, median ms | stored | rows | lost | dead-lettered |",
        "|---|---|---|---|---|---|---|---|",
    ]
    series = [result["baseline"]] + ([result["measured"]] if result["measured"] is not result["baseline"] else [])
    for s in series:
        lat = f"{s['latency_ms_median']:.0f}" if s["latency_ms_median"] is not None else "-"
        lines.append(f"| {s['broker']}, {s['workers']} worker(s), MQTT {s['mqtt_version']} | {len(s['runs'])} | "
                     f"{s['results_per_s']:.0f} | {lat} | {s['stored']} of {s['sent']} | {s['rows']} | {s['lost']} | "
                     f"{s['dead_lettered']} of {s['malformed_sent']} |")
    lines += ["", "Runs:", "", "| setup | run | results/s | latency ms | stored by worker | seconds |",
              "|---|---|---|---|---|---|"]
    for s in series:
        for i, r in enumerate(s["runs"], 1):
            lat = f"{r['latency_ms_median']:.0f}" if r["latency_ms_median"] is not None else "-"
            lines.append(f"| {s['broker']} x{s['workers']} | {i} | {r['results_per_s']:.0f} | {lat} | "
                         f"{r['stored_by_worker']} | {r['seconds']:.1f} |")
    lines += ["", f"Ratio to the baseline (Mosquitto, one worker, same run): **{result['ratio_to_baseline']:.2f}**.",
              "", f"Broker only (Mosquitto, same messages, counting subscriber, no DB): "
              f"{result['broker_only_msgs_per_s']:.0f} messages/s.", "",
              f"Command: `fpverify bench ingest --workers {workers} --broker {broker} --out DIR`"]
    return "\n".join(lines) + "\n"
