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


def _candidates(card_number: str):
    return select(Template.id, Template.data).where(
        Template.status == TemplateStatus.ACTIVE, Template.role == "holder", Template.data.is_not(None),
        Template.card_number != card_number)


def cohort_templates(s: Session, card_number: str, size: int) -> list:
    """Up to `size` parsed templates of other holders (most recent first); [] when under MIN_COHORT."""
    if size <= 0:
        return []
    available = s.scalar(select(func.count()).select_from(_candidates(card_number).subquery()))
    if available < MIN_COHORT:
        return []
    query = (_candidates(card_number).order_by(Template.enrolled_at.desc(), Template.id)
             .limit(size * SCAN_FACTOR).execution_options(yield_per=500))
    out, skipped = [], 0
    for _tid, data in s.execute(query):
        try:
            out.append(matcher.Template.from_bytes(data))
        except ValueError:
            skipped += 1
            continue
        if len(out) >= size:
            break
    if skipped:
        log.info("cohort: skipped %d undecodable stored templates", skipped)
    return out if len(out) >= MIN_COHORT else []


def statistics(s: Session, card_number: str, templates: Sequence[bytes], size: int) -> list[matcher.Cohort | None]:
    """One Cohort (or None: not computed) per template of `templates`, for card `card_number`."""
    out: list[matcher.Cohort | None] = [None] * len(templates)
    try:
        parsed = []
        for raw in templates:
            try:
                parsed.append(matcher.Template.from_bytes(raw))
            except ValueError:
                parsed.append(None)  # an unchecked upload (settings.validate_templates off)
        if size <= 0 or all(p is None for p in parsed):
            return out
        cohort = cohort_templates(s, card_number, size)
        if not cohort:
            log.info("cohort: fewer than %d decodable templates of other holders; no statistics", MIN_COHORT)
            return out
        for i, t in enumerate(parsed):
            if t is None:
                continue
            try:
                out[i] = matcher.cohort_of([matcher.compare(c, t) for c in cohort])
            except ValueError as exc:  # no spread (a degenerate template): the raw rule for its card
                log.warning("cohort: no statistics for a template of this enrollment: %s", exc)
    except Exception as exc:  # never fail an enrollment for its statistics
        log.warning("cohort statistics not computed (%s); the templates keep the raw rule", type(exc).__name__)
        return [None] * len(templates)
    return out
