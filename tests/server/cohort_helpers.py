"""Plain helpers of the impostor-cohort tests (test_cohort.py, test_cohort_backfill.py): real
templates, other holders' cohorts, enrollment uploads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import select

from fpverify import matcher
from fpverify.edge import wire
from fpverify.matcher import synth
from fpverify.server.crud import holders
from fpverify.server.models import Template

KEY = "national-id-key"
PER_CARD = 8  # cohort templates a cohort card holds


def make_pool():
    """Real templates: 6 synthetic fingers (cohort), and 3 presses each of two more (the enrollees)."""
    base = [matcher.extract(synth.impression(synth.generate_finger(200 + i), 0, seed=0)[0]) for i in range(6)]
    new = {seed: [matcher.extract(synth.impression(synth.generate_finger(seed), k, seed=0)[0]).to_bytes()
                  for k in range(3)] for seed in (11, 12)}
    new["press"] = {seed: synth.impression(synth.generate_finger(seed), 3, seed=0)[0] for seed in (11, 12)}
    return base, new


class Screen:
    def show(self, prompt) -> None:
        pass

    def outcome(self, result, message: str) -> None:
        pass


def variants(base: list, count: int, seed: int = 0) -> list[bytes]:
    """`count` distinct decodable templates: each a base template with a random tenth of its minutiae
    dropped and the rest shifted by up to 3 pixels (a stand-in for other fingers' presses)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        t = base[i % len(base)]
        m = t.minutiae.copy()
        m = m[rng.random(len(m)) > 0.1]
        m[:, :2] = np.clip(m[:, :2] + rng.uniform(-3, 3, (len(m), 2)), 0, np.array(t.shape[::-1]) - 1)
        out.append(matcher.Template(m, t.shape, mask=t.mask, mask_block=t.mask_block, dpi=t.dpi).to_bytes())
    return out


def upload(card: str, templates: list[bytes], device: str = "desk-a") -> wire.EnrollmentUpload:
    return wire.EnrollmentUpload(
        enrollment_id=uuid.uuid4(), device_id=device, card_number=card, operator_id="op-1",
        consent=wire.Consent(given_at=datetime.now(UTC), scope="fp", witnessed_by="op-1"),
        fingers=[wire.EnrolledFinger(finger=2, templates=templates, qualities=[80] * len(templates))])


def holder(s, card: str) -> None:
    holders.create_holder(s, "enroller", KEY, card, f"Holder {card}", f"ID-{card}")
    holders.record_consent(s, "enroller", card, datetime.now(UTC) - timedelta(minutes=1), "fingerprint", "op-1")


def no_duplicate(_s, _card, _probes):
    return None


def seed_cohort(s, templates: list[bytes], prefix: str = "K") -> None:
    """Store `templates` as other holders' active templates (PER_CARD a card; no statistics)."""
    for i in range(0, len(templates), PER_CARD):
        card = f"{prefix}{i // PER_CARD:05d}"
        holder(s, card)
        holders.enroll(s, "enroller", upload(card, templates[i:i + PER_CARD]), no_duplicate, cohort_size=0)


def stats_of(s, ids: list[str]) -> list[tuple]:
    return [(t.cohort_mean, t.cohort_sd) for t in s.scalars(select(Template).where(Template.id.in_(ids)))]
