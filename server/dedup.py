"""Duplicate check at enrollment: is any new template the finger of ANOTHER card holder?

Two checks: byte-identical templates (always available), and a 1:N search with the matcher's
public API (matcher.Gallery / matcher.search / Template.from_bytes) at the documented threshold
`matcher.THRESHOLDS[settings.duplicate_threshold]`. If the matcher is not installed or lacks that
API, only the byte check runs and a warning is logged once. Everything goes through
`find_duplicate()` so the app (or a test) can swap the strategy via `app.state.duplicate_checker`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from fpverify.server.models import Template, TemplateStatus

log = logging.getLogger(__name__)
_warned = False


@dataclasses.dataclass(frozen=True)
class DuplicateHit:
    card_number: str
    template_id: str
    score: float | None  # None for a byte-identical template


def _gallery_rows(s: Session, card_number: str) -> list[tuple[str, str, bytes]]:
    q = select(Template.id, Template.card_number, Template.data).where(
        Template.status == TemplateStatus.ACTIVE, Template.role == "holder", Template.card_number != card_number,
        Template.data.is_not(None))
    return [tuple(r) for r in s.execute(q)]


def _matcher_search(probes: Sequence[bytes], rows: list[tuple[str, str, bytes]], threshold_name: str):
    """1:N search with the matcher. Returns a hit, None for no hit; raises ImportError/AttributeError
    when the matcher's public API is not available."""
    from fpverify import matcher  # noqa: PLC0415 - optional dependency, built in parallel

    threshold = matcher.THRESHOLDS[threshold_name]
    gallery = matcher.Gallery()
    owners = {}
    for tid, card, data in rows:
        try:
            gallery.add(tid, matcher.Template.from_bytes(data))
        except ValueError:
            log.warning("template %s cannot be decoded by the matcher; skipped in the duplicate check", tid)
            continue
        owners[tid] = card
    best: DuplicateHit | None = None
    for raw in probes:
        probe = matcher.Template.from_bytes(raw)
        for key, score in matcher.search(probe, gallery, top_k=3):
            if score >= threshold and (best is None or score > (best.score or 0)):
                best = DuplicateHit(owners[key], key, float(score))
    return best


def find_duplicate(s: Session, card_number: str, probes: Sequence[bytes], threshold_name: str) -> DuplicateHit | None:
    global _warned
    rows = _gallery_rows(s, card_number)
    if not rows:
        return None
    by_bytes = {data: (tid, card) for tid, card, data in rows}
    for raw in probes:
        if raw in by_bytes:
            tid, card = by_bytes[raw]
            return DuplicateHit(card, tid, None)
    try:
        return _matcher_search(probes, rows, threshold_name)
    except (ImportError, AttributeError, KeyError, TypeError) as exc:
        if not _warned:
            log.warning("matcher 1:N search unavailable (%s); duplicate check compares template bytes only", exc)
            _warned = True
        return None
    except ValueError as exc:  # a probe the matcher cannot read: the upload itself is bad
        from fpverify.server.crud.errors import Invalid

        raise Invalid(f"template cannot be decoded: {exc}") from exc


def validate_template(data: bytes) -> None:
    """Raise Invalid if the matcher cannot read the template (skipped when no matcher is installed)."""
    try:
        from fpverify import matcher  # noqa: PLC0415

        reader = matcher.Template.from_bytes
    except (ImportError, AttributeError):
        return
    try:
        reader(data)
    except ValueError as exc:
        from fpverify.server.crud.errors import Invalid

        raise Invalid(f"template cannot be decoded: {exc}") from exc
