"""The ingest batch writer: validated station messages into the database, one transaction per batch.

No MQTT here (the consumer, consumer.py, feeds it and acknowledges after `write` returns), so it is
tested against a real database without a broker. Per batch, in ONE transaction:

- every payload is validated with `edge.wire` (the only module of `edge` the registry imports);
- the devices the batch names are read and locked (FOR UPDATE on PostgreSQL, in id order), never
  cached: a device disabled or retired by a commit elsewhere, in any registry process, is refused
  by the next batch (alert `disabled_device` / `retired_device`), and a change committing meanwhile
  waits for this batch or is seen by it;
- results go through the `ResultVerifier` with a `CounterTableLedger` on this same transaction (one
  writer: SQLite never waits on a second connection; counter state is only what committed). It
  reads `signed_counters`, which keeps the counters of results retention has deleted;
- each signed result first claims its (device, counter) in `signed_counters` (INSERT .. ON CONFLICT
  DO NOTHING on its primary key). A counter another registry process claimed meanwhile for another
  result is a replay: dead letter and `replayed_result` alert, as when the verifier sees the counter
  used; claimed by this same result, it is a redelivery. Then results are inserted idempotently by
  result_id (INSERT .. ON CONFLICT DO NOTHING; on PostgreSQL the table is partitioned by
  result_id, so the id is still unique table-wide); each newly stored no_match raises a `no_match`
  alert;
- anything refused becomes a dead letter with the reason and the payload truncated to
  DEAD_LETTER_MAX bytes; forgeries, refused devices and verifier rejections also raise an alert
  (one per device and kind per `ALERT_QUIET_S`, counted in the database, so across processes);
- presence messages update the device row; an audit row sums the batch up.

A statement one message causes (e.g. a value the database refuses) does not fail its neighbours:
the batch is retried one message at a time and the culprit dead-lettered. Transient database
errors (down, busy) propagate: the consumer retries the whole batch, nothing was committed.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import delete, func, select, text, tuple_, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from fpverify.edge import wire
from fpverify.server import audit
from fpverify.server.core.config import Settings
from fpverify.server.crud import devices as devices_crud
from fpverify.server.crud import sites
from fpverify.server.db import Database
from fpverify.server.models import (
    Alert,
    AlertStatus,
    DeadLetter,
    Device,
    SignedCounter,
    VerificationRecord,
    utcnow,
)
from fpverify.server.models.results import record_row
from fpverify.server.trust.verify import Rejection, ResultVerifier, SessionLedger, registry_verifier

log = logging.getLogger(__name__)

DEAD_LETTER_MAX = 4096
ALERT_QUIET_S = 60.0


@dataclass
class Message:
    topic: str
    payload: bytes
    mid: int = 0
    qos: int = 0


@dataclass
class Stats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    statuses: int = 0
    alerts: int = 0
    batches: int = 0
    db_errors: int = 0
    acked: int = 0
    first_message_at: float | None = None  # time.monotonic() of the first message received
    last_error: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Refusal:
    """Why a message is dead-lettered, and the alert it raises (None: the dead letter is enough)."""

    reason: str
    alert_kind: str | None = None
    device_id: str | None = None  # the device the alert is about: the topic's (the broker authenticated it)
    result: wire.VerificationResult | None = None


def transient(exc: BaseException) -> bool:
    """Database down or busy (retry the batch) as opposed to a statement one message caused."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def _short_reason(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {e.get('msg')}")
    return ("invalid message: " + "; ".join(parts))[:1000]


def parse(m: Message) -> wire.VerificationResult | wire.DeviceStatus | Refusal:
    """Validate one payload against its topic (no database)."""
    device = wire.Topics.device_of(m.topic)
    kind = m.topic.rsplit("/", 1)[-1]
    if device is None or kind not in ("results", "status"):
        return Refusal(f"unexpected topic {m.topic[:200]}")
    try:
        msg = (wire.VerificationResult if kind == "results" else wire.DeviceStatus).model_validate_json(m.payload)
    except ValidationError as exc:
        return Refusal(_short_reason(exc))
    if msg.device_id != device:
        # The ACL ties a topic to the certificate that published it: this device forged another's result.
        return Refusal(f"device_id {msg.device_id!r} does not match the topic's device {device!r}",
                       "forged_result" if kind == "results" else None, device,
                       msg if kind == "results" else None)
    return msg


class CounterTableLedger(SessionLedger):
    """The verifier's counter state from `signed_counters` (not from the results, which retention
    deletes): the counters of every signed result ever stored, plus those accepted in this batch."""

    def lookup(self, device_id: str, counter: int) -> uuid.UUID | None:
        hit = self.used.get((device_id, counter))
        if hit is not None:
            return hit
        return self.s.scalar(select(SignedCounter.result_id).where(
            SignedCounter.device_id == device_id, SignedCounter.counter == counter))

    def highest(self, device_id: str) -> int | None:
        if device_id not in self.top:
            self.top[device_id] = self.s.scalar(select(func.max(SignedCounter.counter)).where(
                SignedCounter.device_id == device_id))
        return self.top[device_id]


class BatchWriter:
    def __init__(self, db: Database, settings: Settings, verifier: ResultVerifier | None = None):
        """`verifier` defaults to what the settings call for (`registry_verifier`): in production
        mode every result must be signed."""
        self.db = db
        self.settings = settings
        self.verifier = verifier if verifier is not None else registry_verifier(settings)
        self.stats = Stats()
        self.dialect = db.engine.dialect.name
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover
            raise RuntimeError(f"ingest supports PostgreSQL and SQLite, not {self.dialect}")
        self._insert = insert

    def write(self, batch: list[Message]) -> None:
        """Store the batch (committed when this returns). Raises only transient database errors."""
        try:
            self._write(batch)
        except Exception as exc:  # noqa: BLE001
            if transient(exc):
                raise
            log.warning("batch failed (%r); isolating messages", exc)
            for m in batch:
                try:
                    self._write([m])
                except Exception as exc1:  # noqa: BLE001
                    if transient(exc1):
                        raise
                    log.warning("message on %s refused by the database: %r", m.topic, exc1)
                    self._write([m], forced=Refusal(f"internal error: {exc1!r}"[:1000]))

    # ---- one transaction ------------------------------------------------------------------------

    def _write(self, batch: list[Message], forced: Refusal | None = None) -> None:
        now = utcnow()
        parsed = [forced if forced is not None else parse(m) for m in batch]
        with self.db.sessionmaker() as s:
            devices = self._devices(s, {p.device_id for p in parsed if not isinstance(p, Refusal)})
            ledger = CounterTableLedger(s)
            results: dict[uuid.UUID, dict] = {}
            sources: dict[uuid.UUID, tuple[Message, wire.VerificationResult]] = {}
            dead: list[dict] = []
            refusals: list[Refusal] = []
            statuses: list[wire.DeviceStatus] = []
            dup_in_batch = 0
            for m, p in zip(batch, parsed, strict=True):
                if not isinstance(p, Refusal):
                    p = self._admit(p, m.topic, devices.get(p.device_id), ledger)
                if isinstance(p, Refusal):
                    dead.append(_dead_letter(now, m, p))
                    refusals.append(p)
                elif isinstance(p, wire.DeviceStatus):
                    statuses.append(p)
                elif p.result_id in results:
                    dup_in_batch += 1
                else:
                    results[p.result_id] = record_row(p, now)
                    sources[p.result_id] = (m, p)
            taken, again = self._claim_counters(s, sources)
            lost = again | {p.result_id for _m, p in taken}
            rows = [r for rid, r in results.items() if rid not in lost]
            inserted = self._insert_results(s, rows) if rows else []
            self._release_counters(s, sources, rows, inserted)
            for m, p in taken:
                rej = Rejection("counter_reuse", f"counter {p.counter} was stored meanwhile for another result "
                                                 "(another registry process: cloned key or replay)")
                refusal = Refusal(f"rejected: {rej}", rej.alert_kind, p.device_id, p)
                dead.append(_dead_letter(now, m, refusal))
                refusals.append(refusal)
            if inserted:
                seen = sorted({results[rid]["device_id"] for rid in inserted})
                s.execute(update(Device).where(Device.id.in_(seen)).values(last_seen=now))
                sites.seen(s, {(r["card_number"], r["site_id"]) for r in map(results.get, inserted) if r["card_number"]},
                           now)
            alerts = [_no_match_alert(results[rid]) for rid in inserted if results[rid]["outcome"] == wire.Outcome.NO_MATCH]
            alerts += self._refusal_alerts(s, refusals, now)
            if alerts:
                s.execute(self._insert(Alert).on_conflict_do_nothing(index_elements=["result_id"]), alerts)
            if dead:
                s.execute(self._insert(DeadLetter), dead)
            for st in statuses:
                devices_crud.record_presence(s, st.device_id, st.state, st.at, st.cache_version, st.software_version)
            duplicates = len(rows) - len(inserted) + len(again) + dup_in_batch
            if inserted or dead:
                ids = "".join(sorted(str(i) for i in inserted))
                audit.record(s, "mqtt-ingest", "ingest.batch", "verification_results", f"{len(inserted)} stored", None,
                             {"stored_ids_sha256": hashlib.sha256(ids.encode()).hexdigest(), "dead_letters": len(dead)},
                             note=f"stored={len(inserted)} duplicates={duplicates} dead={len(dead)} alerts={len(alerts)}")
            s.commit()
        st_ = self.stats
        st_.received += len(batch)
        st_.stored += len(inserted)
        st_.duplicates += duplicates
        st_.dead_lettered += len(dead)
        st_.statuses += len(statuses)
        st_.alerts += len(alerts)
        st_.batches += 1

    def _devices(self, s: Session, ids: set[str]) -> dict[str, str]:
        """device id -> "enabled" / "disabled" / "retired", for the devices named, read now (and
        locked until commit on PostgreSQL)."""
        if not ids:
            return {}
        q = (select(Device.id, Device.disabled, Device.retired_at).where(Device.id.in_(sorted(ids)))
             .order_by(Device.id))
        if self.dialect == "postgresql":  # SQLite: BEGIN IMMEDIATE already serialises writers
            q = q.with_for_update()
        return {d: "retired" if retired else "disabled" if disabled else "enabled"
                for d, disabled, retired in s.execute(q)}

    def _admit(self, msg, topic: str, state: str | None, ledger: CounterTableLedger):
        """The message itself if accepted, else a Refusal."""
        if state is None:
            return Refusal(f"unknown or disabled device {msg.device_id!r} (not registered)")
        if state != "enabled":
            is_result = isinstance(msg, wire.VerificationResult)
            return Refusal(f"unknown or disabled device {msg.device_id!r} ({state})",
                           f"{state}_device" if is_result else None, msg.device_id, msg if is_result else None)
        if isinstance(msg, wire.VerificationResult) and self.verifier is not None:
            rej = self.verifier.check(msg, topic, ledger)
            if rej is not None:
                return Refusal(f"rejected: {rej}"[:1000], rej.alert_kind, msg.device_id, msg)
        return msg

    def _refusal_alerts(self, s: Session, refusals: list[Refusal], now: datetime) -> list[dict]:
        """One alert per (device, kind) per ALERT_QUIET_S: a flood of forgeries gives the office one
        alert to act on (every message is still its own dead letter)."""
        out: list[dict] = []
        raised: set[tuple[str, str]] = set()
        since = now - timedelta(seconds=ALERT_QUIET_S)
        for r in refusals:
            if r.alert_kind is None or r.device_id is None or (r.device_id, r.alert_kind) in raised:
                continue
            raised.add((r.device_id, r.alert_kind))
            recent = s.scalar(select(func.count()).select_from(Alert).where(
                Alert.device_id == r.device_id, Alert.kind == r.alert_kind, Alert.raised_at >= since))
            if recent:
                continue
            res = r.result
            # result_id stays empty: the claimed id is not trustworthy and may belong to a real result
            claimed = f" (claimed result_id {res.result_id}, counter {res.counter})" if res is not None else ""
            out.append({"kind": r.alert_kind, "result_id": None, "card_number": res.card_number if res else None,
                        "device_id": r.device_id, "site_id": res.site_id if res else None, "card_retained": False,
                        "raised_at": now, "status": AlertStatus.OPEN, "comment": (r.reason + claimed)[:2000]})
        return out

    def _claim_counters(self, s: Session, sources: dict[uuid.UUID, tuple[Message, wire.VerificationResult]]
                        ) -> tuple[list[tuple[Message, wire.VerificationResult]], set[uuid.UUID]]:
        """Claim (device, counter) of each signed result. Returns the results whose counter another
        result holds (a process that committed after this batch's verifier looked: its ledger only
        sees what had committed) and the ids whose counter they already hold themselves (stored
        before: a redelivery, also when retention has deleted the record since)."""
        signed: dict[tuple[str, int], uuid.UUID] = {}
        twice = []  # a second result with a counter used earlier in this batch (no verifier: demo, development)
        for rid, (m, p) in sources.items():
            if p.signature is not None and p.counter is not None:
                if (p.device_id, p.counter) in signed:
                    twice.append((m, p))
                else:
                    signed[(p.device_id, p.counter)] = rid
        if not signed:
            return [], set()
        if self.dialect == "postgresql":  # one statement of three arrays (as _insert_results)
            params = {"d": [d for d, _c in signed], "c": [c for _d, c in signed], "r": list(signed.values())}
            claimed = {(d, c) for d, c in s.execute(_PG_CLAIM, params)}
        else:
            rows = [{"device_id": d, "counter": c, "result_id": rid} for (d, c), rid in signed.items()]
            stmt = self._insert(SignedCounter).on_conflict_do_nothing()
            claimed = {(d, c) for d, c in s.execute(stmt.returning(SignedCounter.device_id, SignedCounter.counter),
                                                    rows)}
        lost = [k for k in signed if k not in claimed]
        if not lost:
            return twice, set()
        holders = {(d, c): rid for d, c, rid in s.execute(
            select(SignedCounter.device_id, SignedCounter.counter, SignedCounter.result_id)
            .where(tuple_(SignedCounter.device_id, SignedCounter.counter).in_(lost)))}
        again = {signed[k] for k in lost if holders.get(k) == signed[k]}
        taken = [sources[signed[k]] for k in lost if holders.get(k) != signed[k]]
        return twice + taken, again

    def _release_counters(self, s: Session, sources: dict[uuid.UUID, tuple[Message, wire.VerificationResult]],
                          rows: list[dict], inserted: list[uuid.UUID]) -> None:
        """A result whose id was stored already (with another counter: never from a sound station)
        is not stored again, so the counter it claimed goes back: the guard holds only stored rows."""
        done = set(inserted)
        for r in rows:
            p = sources[r["result_id"]][1]
            if r["result_id"] not in done and p.signature is not None and p.counter is not None:
                s.execute(delete(SignedCounter).where(SignedCounter.device_id == p.device_id,
                                                      SignedCounter.counter == p.counter,
                                                      SignedCounter.result_id == p.result_id))

    def _insert_results(self, s: Session, rows: list[dict]) -> list[uuid.UUID]:
        """INSERT .. ON CONFLICT DO NOTHING (result_id, and (device_id, counter) of signed rows);
        returns the ids actually inserted."""
        if self.dialect == "postgresql":
            # One statement with one array per column: psycopg need not parse a multi-thousand
            # placeholder VALUES list per batch (3-4x faster than executemany here).
            params = {c: [r[c] for r in rows] for c in _COLUMNS}
            return list(s.scalars(_pg_unnest_insert(), params))
        stmt = self._insert(VerificationRecord).on_conflict_do_nothing()
        return list(s.scalars(stmt.returning(VerificationRecord.result_id), rows))


_COLUMNS = [c.name for c in VerificationRecord.__table__.columns]
_PG_CLAIM = text("INSERT INTO signed_counters (device_id, counter, result_id) SELECT * FROM "
                 "unnest(CAST(:d AS VARCHAR[]), CAST(:c AS BIGINT[]), CAST(:r AS UUID[])) "
                 "ON CONFLICT DO NOTHING RETURNING device_id, counter")
_PG_INSERT = None


def _pg_unnest_insert():
    """INSERT .. SELECT * FROM unnest(one typed array per column), built from the table itself."""
    global _PG_INSERT
    if _PG_INSERT is None:
        from sqlalchemy.dialects import postgresql

        dialect = postgresql.dialect()
        cols = VerificationRecord.__table__.columns
        arrays = ", ".join(f"CAST(:{c.name} AS {c.type.compile(dialect=dialect)}[])" for c in cols)
        _PG_INSERT = text(f"INSERT INTO verification_results ({', '.join(_COLUMNS)}) SELECT * FROM unnest({arrays}) "
                          "ON CONFLICT DO NOTHING RETURNING result_id")
    return _PG_INSERT


def _dead_letter(now: datetime, m: Message, r: Refusal) -> dict:
    return {"received_at": now, "topic": m.topic[:300], "reason": r.reason[:1000],
            "payload": m.payload[:DEAD_LETTER_MAX], "payload_size": len(m.payload)}


def _no_match_alert(row: dict) -> dict:
    """A no_match: the desk retained the card; the insurance office must follow up."""
    return {"kind": "no_match", "result_id": row["result_id"], "card_number": row["card_number"],
            "device_id": row["device_id"], "site_id": row["site_id"], "card_retained": True,
            "raised_at": row["received_at"], "status": AlertStatus.OPEN, "comment": None}
