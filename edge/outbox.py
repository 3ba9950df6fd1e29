"""The durable outbox: every verification result is committed here before the desk sees it as done.

A row leaves the outbox only when the broker acknowledged it (PUBACK with a success code). Until
then it is published again after a reconnect or a restart; the registry drops duplicates by the
result's UUIDv7 id. `outbox_history` keeps every id ever queued (and when it was acknowledged), so
what was sent can be audited against what was recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import uuid6

from fpverify.edge.cache import Store
from fpverify.edge.wire import VerificationResult


def new_result_id():
    """UUIDv7: time-ordered, unique without coordination; the registry's duplicate key."""
    return uuid6.uuid7()


@dataclass(frozen=True)
class Pending:
    seq: int
    result_id: str
    payload: bytes  # the JSON published as is


class Outbox:
    """`signer` (edge.signing.ResultSigner, optional) signs each result inside the insert's
    transaction, so the per-device counter and the queued row commit together or not at all."""

    def __init__(self, store: Store, signer=None) -> None:
        self.store = store
        self.signer = signer
        self.last_recorded: VerificationResult | None = None  # as queued: with counter/signature if signing

    def add(self, result: VerificationResult) -> int:
        """Commit the result durably (synchronous=FULL); returns its sequence number."""
        now = datetime.now(UTC).isoformat()
        with self.store.transaction() as db:
            if self.signer is not None:
                result = self.signer.sign(result, db)
            rid = str(result.result_id)
            cur = db.execute("INSERT INTO outbox (result_id, payload, created_at) VALUES (?, ?, ?)",
                             (rid, result.model_dump_json(), now))
            seq = cur.lastrowid
            db.execute("INSERT INTO outbox_history (seq, result_id, outcome, created_at) VALUES (?, ?, ?, ?)",
                       (seq, rid, result.outcome.value, now))
        self.last_recorded = result
        return seq

    def pending(self, limit: int = 100, exclude: set[int] | frozenset[int] = frozenset()) -> list[Pending]:
        """Oldest first, skipping sequence numbers already in flight."""
        rows = self.store.query("SELECT seq, result_id, payload FROM outbox ORDER BY seq LIMIT ?",
                                (limit + len(exclude),))
        return [Pending(s, r, p.encode()) for s, r, p in rows if s not in exclude][:limit]

    def ack(self, seqs: list[int]) -> int:
        """The broker has the results: delete them from the outbox, stamp the history. One commit."""
        if not seqs:
            return 0
        now = datetime.now(UTC).isoformat()
        with self.store.transaction() as db:
            deleted = 0
            for seq in seqs:
                deleted += db.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount
                db.execute("UPDATE outbox_history SET acked_at = ? WHERE seq = ? AND acked_at IS NULL",
                           (now, seq))
        return deleted

    def count(self) -> int:
        return self.store.query("SELECT count(*) FROM outbox")[0][0]

    def history_ids(self) -> list[str]:
        return [r[0] for r in self.store.query("SELECT result_id FROM outbox_history ORDER BY seq")]

    def prune_history(self, days: int) -> int:
        """Forget acknowledged ids older than `days` (shortest necessary retention)."""
        cutoff = (datetime.now(UTC) - timedelta(days=days)).isoformat()
        with self.store.transaction() as db:
            return db.execute("DELETE FROM outbox_history WHERE acked_at IS NOT NULL AND acked_at < ?",
                              (cutoff,)).rowcount
