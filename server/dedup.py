"""Duplicate check at enrollment: is any new template the finger of ANOTHER card holder?

The registry keeps, per database, a `DuplicateIndex` in memory: the compact codes
(`matcher.index.CodeGallery`, about 0.7 KB a template) of every active holder template, kept up to
date from the template feed (`FeedChange`, the totally ordered log the stations follow), so each
check reads only the changes since the last one. A check is two stages: the codes pick each probe's
`SHORTLIST` best candidates among a million templates in well under a second; those templates are
read from the database and scored by the full `matcher.compare` against every probe. The decision
is one over all (probe, stored template) pairs, so its threshold is the best-of-n one
(`matcher.best_of_n`) of `matcher.THRESHOLDS[settings.duplicate_threshold]` (or of
`duplicate_threshold_score`) for n = templates x probes: the chance that a new person's enrollment
is held stays at the named rate however large the gallery grows. A template byte-identical to a
stored one is a hit whatever its score.

The index is built on first use after a start, from the database: about 3 ms a template on one
core (decode, cylinders, code), so about 51 minutes for a million (`fpverify bench search`,
docs/scale.md); `matcher.index.CodeGallery.save/load` would cut that to seconds but is not used
here yet (a snapshot is biometric-derived data at rest: it needs the registry's encryption).
The matcher is imported here at module level: a registry without it does not start, rather than
silently checking less.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Sequence

import numpy as np
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from fpverify import matcher
from fpverify.matcher import index
from fpverify.server.crud.errors import Invalid
from fpverify.server.ingest import feed
from fpverify.server.models import FeedChange, Template, TemplateStatus

log = logging.getLogger(__name__)
SHORTLIST = 100  # first-stage candidates a probe (docs/scale.md: recall at a million and ten)
THREADS = 2  # first-stage threads
_IN_CHUNK = 500  # ids in one IN (...) query


@dataclasses.dataclass(frozen=True)
class DuplicateHit:
    card_number: str
    template_id: str
    score: float | None  # None for a byte-identical template


def digest(data: bytes) -> int:
    """64-bit digest of template bytes (byte-identical uploads)."""
    return int.from_bytes(hashlib.blake2b(bytes(data), digest_size=8).digest(), "little")


def _active_holder_templates():
    return select(Template.id, Template.card_number, Template.data).where(
        Template.status == TemplateStatus.ACTIVE, Template.role == "holder", Template.data.is_not(None))


class DuplicateIndex:
    """Codes of the active holder templates of one database, following its template feed."""

    def __init__(self) -> None:
        self.gallery = index.CodeGallery()
        self.version = -1  # last feed version applied; -1: not built
        self.lock = threading.Lock()
        self._groups: dict[str, int] = {}  # card number -> group number in the gallery
        self.undecodable = 0  # stored templates the matcher cannot read (found by bytes only)
        self.rebuild_s: float | None = None

    def __len__(self) -> int:
        return len(self.gallery)

    def _group(self, card: str) -> int:
        return self._groups.setdefault(card, len(self._groups))

    def _add(self, tid: str, card: str, data: bytes) -> None:
        try:
            t = matcher.Template.from_bytes(data)
        except ValueError:
            # Stored before uploads were checked (settings.validate_templates off): it can only be
            # found by its bytes. Counted and logged by id (never its content).
            self.undecodable += 1
            log.warning("stored template %s cannot be decoded by the matcher; duplicate check by bytes only", tid)
            code = np.zeros((self.gallery.p.words, self.gallery.p.gallery_cylinders), np.uint64)
            self.gallery.add_code(tid, code, 0, self._group(card), digest(data))
            return
        self.gallery.add(tid, t, self._group(card), digest(data))

    @staticmethod
    def _visible(s: Session) -> int:
        """Highest feed version whose changes this session sees in full.

        Versions are handed out under the feed counter's row lock, so while this session holds
        uncommitted changes of its own (a test enrolling twice in one transaction), every lower
        version is committed and its own are visible to it: it sees up to its own latest.
        """
        own = s.info.get("feed_version")
        return own if own is not None else feed.current_version(s)

    def _watch_rollback(self, s: Session) -> None:
        # Changes applied from this session's own uncommitted rows vanish if it rolls back, and
        # their version numbers are handed out again: then rebuild rather than trust them.
        if s.info.get("feed_version") is not None:
            event.listen(s, "after_rollback", self._invalidate, once=True)

    def _invalidate(self, _session=None) -> None:
        self.version = -1

    def rebuild(self, s: Session) -> None:
        t0 = time.perf_counter()
        self.gallery = index.CodeGallery()
        self._groups.clear()
        self.undecodable = 0
        version = self._visible(s)  # before the rows: a change after it is applied from the feed
        for tid, card, data in s.execute(_active_holder_templates().execution_options(yield_per=2000)):
            self._add(tid, card, data)
        self.version = version
        self._watch_rollback(s)
        self.rebuild_s = time.perf_counter() - t0
        log.info("duplicate index built: %d templates in %.1f s", len(self.gallery), self.rebuild_s)

    def refresh(self, s: Session) -> None:
        """Apply the feed changes since the last refresh (rebuild when never built or the feed restarted)."""
        upto = self._visible(s)
        if self.version < 0 or upto < self.version:
            self.rebuild(s)
            return
        if upto == self.version:
            return
        changes = list(s.execute(
            select(FeedChange.op, FeedChange.template_id)
            # the registry's own log (site None): each template once, however many sites get it
            .where(FeedChange.version > self.version, FeedChange.version <= upto, FeedChange.site_id.is_(None),
                   FeedChange.op.in_(("add", "revoke")))
            .order_by(FeedChange.version)))  # fmt: skip
        adds = [tid for op, tid in changes if op == "add" and tid]
        rows = {}
        for i in range(0, len(adds), _IN_CHUNK):
            q = _active_holder_templates().where(Template.id.in_(adds[i : i + _IN_CHUNK]))
            rows.update({tid: (card, data) for tid, card, data in s.execute(q)})
        for op, tid in changes:
            if op == "add" and tid in rows:
                self._add(tid, *rows[tid])
            elif op == "revoke":
                self.gallery.remove(tid)
        self.version = upto
        self._watch_rollback(s)


_INDEXES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_INDEXES_LOCK = threading.Lock()


def index_for(s: Session) -> DuplicateIndex:
    """The process's index of the session's database (one per engine)."""
    bind = s.get_bind()
    engine = getattr(bind, "engine", bind)
    with _INDEXES_LOCK:
        idx = _INDEXES.get(engine)
        if idx is None:
            idx = _INDEXES[engine] = DuplicateIndex()
    return idx


def _fetch(s: Session, ids: list[str], card_number: str) -> list[tuple[str, str, bytes]]:
    out = []
    for i in range(0, len(ids), _IN_CHUNK):
        q = _active_holder_templates().where(Template.id.in_(ids[i : i + _IN_CHUNK]), Template.card_number != card_number)
        out += [tuple(r) for r in s.execute(q)]
    return out


def find_duplicate(s: Session, card_number: str, probes: Sequence[bytes], threshold_name: str,
                   threshold_score: float | None = None) -> DuplicateHit | None:
    """A template of another holder among `probes`, at the operating point `threshold_name` or, when
    given, at the score `threshold_score` (settings.duplicate_threshold_score)."""
    base = matcher.THRESHOLDS[threshold_name] if threshold_score is None else float(threshold_score)
    idx = index_for(s)
    with idx.lock:
        idx.refresh(s)
        if len(idx) == 0:
            return None
        # One decision over every (probe, stored template) pair: the best-of-n threshold keeps the
        # chance that an enrollment of a new person is held at the named rate (matcher.decision).
        threshold = matcher.best_of_n(base, len(idx) * max(1, len(probes)))
        own = idx._groups.get(card_number)
        same_bytes = {k for raw in probes for k in idx.gallery.with_digest(digest(raw))
                      if idx.gallery.group(k) != own}  # fmt: skip
    if same_bytes:
        wanted = set(map(bytes, probes))
        for tid, card, data in _fetch(s, sorted(same_bytes), card_number):
            if bytes(data) in wanted:
                return DuplicateHit(card, tid, None)
    try:
        decoded = [matcher.Template.from_bytes(raw) for raw in probes]
    except ValueError as exc:  # a probe the matcher cannot read: the upload itself is bad
        raise Invalid(f"template cannot be decoded: {exc}") from exc
    with idx.lock:
        cand = idx.gallery.shortlist(decoded, SHORTLIST, exclude_group=own, threads=THREADS)
    best: DuplicateHit | None = None
    for tid, card, data in _fetch(s, [str(k) for k in cand], card_number):
        t = matcher.Template.from_bytes(data)  # in the index, so the matcher read it before
        score = max(matcher.compare(p, t) for p in decoded)
        if score >= threshold and (best is None or score > (best.score or 0.0)):
            best = DuplicateHit(card, tid, float(score))
    return best


def validate_template(data: bytes) -> None:
    """Raise Invalid if the matcher cannot read the template."""
    try:
        matcher.Template.from_bytes(data)
    except ValueError as exc:
        raise Invalid(f"template cannot be decoded: {exc}") from exc
