"""Backfill of templates' impostor-cohort statistics (issue 17): `fpverify server cohort-backfill`.

Templates enrolled before migration 0009, or while the registry held fewer than MIN_COHORT other
holders' templates, have no statistics, and the stations keep their cards on the raw rule. `run`
computes them with server/cohort.py's `compute`, the enrollment's own computation (the
FPVERIFY_COHORT_SIZE most recent active templates of other holders, never the card's own), for every
active template without them; with `recompute` for every active template (after a matcher upgrade
changed the score scale). A recomputed template whose statistics can no longer be computed has
them cleared: statistics on an old scale are worse than the raw rule.

Batches of `batch` templates in id order. Each is read and computed first, then written in one
short transaction: the new values (only where the template is still active), an `add` for each
site holding the card (feed.resend: its stations replace their cached row at the next pull), one
audit row `template.cohort` (counts in the note; the ids and statistics before and after in its
digests) and the commit. An interruption loses only the batch in hand; a rerun finds the
templates still without statistics (a rerun of `recompute` starts over, finds the same values and
changes nothing twice). A real run ends with one audit row `cohort.backfill` holding its counts.
`dry_run` computes and counts the same and writes nothing. Logs counts only, never template content.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from fpverify import matcher
from fpverify.matcher.decision import MIN_COHORT
from fpverify.server import audit, cohort
from fpverify.server.ingest import feed
from fpverify.server.models import Template, TemplateStatus

log = logging.getLogger(__name__)

ACTOR = "cohort-backfill"
BATCH = 200
REVOKED = "revoked during the run"


class BackfillError(Exception):
    """Nothing can be computed (statistics off, or too few templates at the registry)."""


@dataclass
class Report:
    dry_run: bool
    recompute: bool
    cohort_size: int
    pending: int = 0  # templates the run is for when it starts (without statistics, or all active)
    examined: int = 0
    updated: int = 0
    unchanged: int = 0  # recompute: the same values again
    cleared: int = 0  # recompute: had statistics, can no longer have them (also counted in `left`)
    left: Counter = field(default_factory=Counter)  # reason -> templates left without statistics
    feed_entries: int = 0
    batches: int = 0  # batches committed with a change

    def summary(self) -> str:
        which = "active templates" if self.recompute else "active templates without statistics"
        parts = [f"examined {self.examined} of {self.pending} {which}",
                 f"{'would update' if self.dry_run else 'updated'} {self.updated}"]
        if self.recompute:
            parts.append(f"unchanged {self.unchanged}")
        left = sum(self.left.values())
        why = "; ".join(f"{n} {reason}" for reason, n in self.left.most_common())
        parts.append(f"left without statistics {left}" + (f" ({why})" if left else ""))
        if self.cleared:
            parts.append(f"{'would clear' if self.dry_run else 'cleared'} {self.cleared} statistics")
        if not self.dry_run:
            parts.append(f"{self.feed_entries} feed entries for stations")
        return ("cohort backfill (dry run): " if self.dry_run else "cohort backfill: ") + ", ".join(parts)

    def as_dict(self) -> dict:
        return {"recompute": self.recompute, "cohort_size": self.cohort_size, "pending": self.pending,
                "examined": self.examined, "updated": self.updated, "unchanged": self.unchanged,
                "cleared": self.cleared, "left": dict(self.left), "feed_entries": self.feed_entries,
                "batches": self.batches}


def _wanted(recompute: bool):
    q = select(Template.id, Template.card_number, Template.data, Template.cohort_mean, Template.cohort_sd).where(
        Template.status == TemplateStatus.ACTIVE, Template.data.is_not(None))
    return q if recompute else q.where(or_(Template.cohort_mean.is_(None), Template.cohort_sd.is_(None)))


def run(s: Session, cohort_size: int, dry_run: bool = False, recompute: bool = False, limit: int | None = None,
        batch: int = BATCH) -> Report:
    """Compute (or with dry_run only count) the statistics; see the module's description."""
    if cohort_size <= 0:
        raise BackfillError("FPVERIFY_COHORT_SIZE is 0: cohort statistics are off, nothing to compute")
    report = Report(dry_run, recompute, cohort_size)
    run_id = uuid.uuid4().hex[:12]
    parsed: cohort.Parsed = {}  # cohort templates parsed once a run, not once a card
    after = ""
    try:
        stored = cohort.available(s)
        if stored < MIN_COHORT:
            raise BackfillError(f"the registry holds {stored} active holder templates; statistics need at least "
                                f"{MIN_COHORT} of other holders' (FPVERIFY_COHORT_SIZE {cohort_size}): nothing computed")
        report.pending = s.scalar(select(func.count()).select_from(_wanted(recompute).subquery()))
        while limit is None or report.examined < limit:
            n = batch if limit is None else min(batch, limit - report.examined)
            rows = s.execute(_wanted(recompute).where(Template.id > after).order_by(Template.id).limit(n)).all()
            if not rows:
                break
            after = rows[-1].id
            changes = _compute(s, rows, cohort_size, parsed, report)
            if len(parsed) > 2 * cohort_size + 100:  # the cohort moved on (enrollments meanwhile)
                parsed.clear()
            if changes and not dry_run:
                _write(s, changes, report, f"{run_id}/{report.batches + 1}")
        if not dry_run:
            audit.record(s, ACTOR, "cohort.backfill", "templates", run_id, None, report.as_dict(),
                         note=report.summary()[:500])
            s.commit()
        else:
            s.rollback()
    except BaseException:  # an interruption too: the batch in hand is dropped, the committed ones stay
        s.rollback()
        raise
    log.info("%s", report.summary())
    return report


def _compute(s: Session, rows, size: int, parsed: cohort.Parsed, report: Report) -> dict:
    """Statistics of one batch, card by card; returns {template id: (card, old, new)} where they differ."""
    by_card: dict[str, list] = {}
    for r in rows:
        by_card.setdefault(r.card_number, []).append(r)
    changes = {}
    for card, ts in by_card.items():
        got = cohort.compute(s, card, [r.data for r in ts], size, parsed)
        s.rollback()  # no transaction (nor SQLite's write lock) held between cards
        for r, c in zip(ts, got, strict=True):
            report.examined += 1
            old = (r.cohort_mean, r.cohort_sd)
            new = (c.mean, c.sd) if isinstance(c, matcher.Cohort) else (None, None)
            if not isinstance(c, matcher.Cohort):
                report.left[c] += 1
            if new == old:
                report.unchanged += isinstance(c, matcher.Cohort)
                continue
            if new == (None, None):
                report.cleared += 1
            else:
                report.updated += 1
            changes[r.id] = (card, old, new)
    return changes


def _write(s: Session, changes: dict, report: Report, label: str) -> None:
    """One batch's new values, feed entries and audit row, in one transaction."""
    done: dict[str, list[str]] = {}
    for tid, (card, _old, (mean, sd)) in changes.items():
        res = s.execute(update(Template).where(Template.id == tid, Template.status == TemplateStatus.ACTIVE,
                                               Template.data.is_not(None)).values(cohort_mean=mean, cohort_sd=sd))
        if res.rowcount:  # revoked meanwhile: nothing to send
            done.setdefault(card, []).append(tid)
    entries = sum(feed.resend(s, card, tids) for card, tids in done.items())
    if entries:  # the stations are told after the commit where a notifier is attached (the CLI has
        feed.notify_stations(s)  # none: they pull within registry.sync_interval_s)
    written = {tid for tids in done.values() for tid in tids}
    for tid in changes.keys() - written:  # revoked since it was read: not counted as changed
        if changes[tid][2] == (None, None):
            report.cleared -= 1  # already in `left` with its reason
        else:
            report.updated -= 1
            report.left[REVOKED] += 1
    audit.record(s, ACTOR, "template.cohort", "templates", label,
                 {tid: list(changes[tid][1]) for tid in sorted(written)},
                 {tid: list(changes[tid][2]) for tid in sorted(written)},
                 note=f"cohort statistics of {len(written)} templates ({len(changes) - len(written)} "
                      f"{REVOKED}), {entries} feed entries")
    s.commit()
    report.feed_entries += entries
    report.batches += 1
    log.info("cohort backfill: batch %s: %d templates written, %d feed entries (%d examined so far)",
             label, len(written), entries, report.examined)
