"""Impostor-cohort statistics of new templates at enrollment (issue 17; docs/matcher.md).

Each new template is compared, as the candidate, with a cohort of other holders' active templates
(each cohort template the probe, as `bench desk --cohort` does), and `matcher.cohort_of` gives the
mean and sd of those scores. The station decides on them (edge/workflow.py `_decide`): accept when a
template's raw score reaches mean + sd * matcher.cohort_threshold(point, n).

The cohort: the `size` most recently enrolled active holder templates of OTHER cards (never the
enrolling card's; ties by id, so the same database gives the same cohort), the undecodable ones
skipped, read and parsed once per enrollment. Fewer than MIN_COHORT decodable ones: no statistics
(the station keeps the raw rule for the card). About `size` comparisons a new template.
Statistics that cannot be computed never fail an enrollment: they are left out and logged (counts
and ids only, never template content).

`compute` is the one computation, for enrollment (`statistics`) and for the backfill of templates
stored without statistics (server/ops/cohort_backfill.py), which also passes a cache of parsed
cohort templates: a template's first comparison builds its descriptors, ~30 times a later one's cost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fpverify import matcher
from fpverify.matcher.decision import MIN_COHORT
from fpverify.server.models import Template, TemplateStatus

log = logging.getLogger(__name__)
SCAN_FACTOR = 4  # rows read at most per cohort template wanted (undecodable ones are skipped)

# Why a template has no statistics (compute's answer instead of a Cohort)
OFF = "cohort size 0"
TOO_SMALL = f"fewer than {MIN_COHORT} decodable templates of other holders"
UNDECODABLE = "template undecodable"
NO_SPREAD = "cohort scores without spread"

Parsed = dict[str, matcher.Template | None]  # template id -> parsed (None: undecodable)


def _candidates(card_number: str | None):
    """Active holder templates with data; of cards other than `card_number` unless it is None."""
    q = select(Template.id, Template.data).where(
        Template.status == TemplateStatus.ACTIVE, Template.role == "holder", Template.data.is_not(None))
    return q if card_number is None else q.where(Template.card_number != card_number)


def available(s: Session, card_number: str | None = None) -> int:
    """How many stored templates could be cohort templates (of cards other than `card_number`)."""
    return s.scalar(select(func.count()).select_from(_candidates(card_number).subquery()))


def _parse(tid: str, data: bytes, parsed: Parsed | None):
    if parsed is not None and tid in parsed:
        return parsed[tid]
    try:
        t = matcher.Template.from_bytes(data)
    except ValueError:
        t = None
    if parsed is not None:
        parsed[tid] = t
    return t


def cohort_templates(s: Session, card_number: str, size: int, parsed: Parsed | None = None) -> list:
    """Up to `size` parsed templates of other holders (most recent first); [] when under MIN_COHORT.
    `parsed`: a cache by template id kept by the caller across calls (the backfill)."""
    if size <= 0:
        return []
    if available(s, card_number) < MIN_COHORT:
        return []
    query = (_candidates(card_number).order_by(Template.enrolled_at.desc(), Template.id)
             .limit(size * SCAN_FACTOR).execution_options(yield_per=500))
    out, skipped = [], 0
    for tid, data in s.execute(query):
        fresh = parsed is None or tid not in parsed  # logged once per cache, not once per card
        t = _parse(tid, data, parsed)
        if t is None:
            skipped += fresh
            continue
        out.append(t)
        if len(out) >= size:
            break
    if skipped:
        log.info("cohort: skipped %d undecodable stored templates", skipped)
    return out if len(out) >= MIN_COHORT else []


def compute(s: Session, card_number: str, templates: Sequence[bytes], size: int,
            parsed: Parsed | None = None) -> list[matcher.Cohort | str]:
    """One Cohort per template of `templates` (for card `card_number`, never in its own cohort), or
    the reason it has none (OFF, TOO_SMALL, UNDECODABLE, NO_SPREAD). Database errors propagate."""
    out: list[matcher.Cohort | str] = []
    for raw in templates:
        try:
            out.append(matcher.Template.from_bytes(raw))
        except ValueError:
            out.append(UNDECODABLE)  # an unchecked upload (settings.validate_templates off)
    if size <= 0:
        return [OFF] * len(out)
    if all(isinstance(t, str) for t in out):
        return out
    cohort = cohort_templates(s, card_number, size, parsed)
    if not cohort:
        return [t if isinstance(t, str) else TOO_SMALL for t in out]
    for i, t in enumerate(out):
        if isinstance(t, str):
            continue
        try:
            out[i] = matcher.cohort_of([matcher.compare(c, t) for c in cohort])
        except ValueError:  # no spread (a degenerate template): the raw rule for its card
            out[i] = NO_SPREAD
    return out


def statistics(s: Session, card_number: str, templates: Sequence[bytes], size: int) -> list[matcher.Cohort | None]:
    """One Cohort (or None: not computed) per template of `templates`, for card `card_number`.
    Never fails (an enrollment does not wait on its statistics)."""
    try:
        got = compute(s, card_number, templates, size)
    except Exception as exc:  # never fail an enrollment for its statistics
        log.warning("cohort statistics not computed (%s); the templates keep the raw rule", type(exc).__name__)
        return [None] * len(templates)
    if TOO_SMALL in got:
        log.info("cohort: %s; no statistics", TOO_SMALL)
    if NO_SPREAD in got:
        log.warning("cohort: no statistics for a template of this enrollment: %s", NO_SPREAD)
    return [c if isinstance(c, matcher.Cohort) else None for c in got]
