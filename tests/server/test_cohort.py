"""Impostor-cohort statistics at enrollment (issue 17), with the real matcher on SQLite: a new
template gets the mean and sd of its scores against other holders' active templates when at least
MIN_COHORT decodable ones exist, none below, never against its own card's; undecodable stored
templates are skipped; the feed and the on-demand fetch carry the statistics, and a station's real
TemplateSync stores them with each template, and its Verifier decides on them."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sqlalchemy import select

from fpverify import matcher
from fpverify.edge import fetched
from fpverify.edge.cache import Store, new_key
from fpverify.edge.config import FetchSection, RegistrySection, StationSection
from fpverify.edge.outbox import Outbox
from fpverify.edge.sync import TemplateSync
from fpverify.edge.wire import Outcome
from fpverify.edge.workflow import Engine, Verifier
from fpverify.matcher.decision import MIN_COHORT
from fpverify.server import cohort
from fpverify.server.app import create_app
from fpverify.server.crud import devices, holders, sites
from fpverify.server.db import Database
from fpverify.server.models import Template
from fpverify.services import ServedApp
from tests.server.cohort_helpers import (
    PER_CARD,
    Screen,
    holder,
    make_pool,
    no_duplicate,
    seed_cohort,
    stats_of,
    upload,
    variants,
)
from tests.server.helpers import make_settings


@pytest.fixture(scope="module")
def pool():
    return make_pool()


@pytest.fixture
def db(tmp_path):
    d = Database(settings=make_settings(f"sqlite:///{tmp_path / 'registry.db'}", card_fetch_per_minute=1000))
    d.migrate()
    yield d
    d.dispose()


def test_statistics_need_min_cohort_decodable_templates_of_other_cards(db, pool):
    base, new = pool
    with db.session() as s:
        cards = variants(base, MIN_COHORT - PER_CARD)  # one card short of MIN_COHORT
        seed_cohort(s, cards)
        # undecodable stored templates (an unchecked registry) do not count towards the cohort
        seed_cohort(s, [uuid.uuid4().bytes + b"tmpl" for _ in range(2 * PER_CARD)], prefix="R")
        holder(s, "CNEW0001")
        ids = holders.enroll(s, "enroller", upload("CNEW0001", new[11]), no_duplicate, cohort_size=640)["template_ids"]
        assert stats_of(s, ids) == [(None, None)] * 3
        # the enrolling card's own templates are never its cohort: enrolling more on it changes nothing
        holder(s, "CNEW0002")
        own = variants(base, PER_CARD, seed=7)
        holders.enroll(s, "enroller", upload("CNEW0002", own), no_duplicate, cohort_size=0)
        ids = holders.enroll(s, "enroller", upload("CNEW0002", new[12]), no_duplicate, cohort_size=640)["template_ids"]
        # 295 decodable of other cards (292 + CNEW0001's 3): its own 8 would make 303, but do not count
        assert stats_of(s, ids) == [(None, None)] * 3
        assert cohort.cohort_templates(s, "CNEW0002", 640) == []
        assert len(cohort.cohort_templates(s, "CNEW0009", 640)) == 292 + 3 + 8 + 3  # for another card they do
        s.commit()


def test_enrollment_stores_the_statistics_of_each_template(db, pool):
    base, new = pool
    with db.session() as s:
        seed_cohort(s, variants(base, MIN_COHORT + 20))
        holder(s, "CNEW0001")
        ids = holders.enroll(s, "enroller", upload("CNEW0001", new[11]), no_duplicate, cohort_size=640)["template_ids"]
        s.commit()
        got = {t.id: t for t in s.scalars(select(Template).where(Template.id.in_(ids)))}
        cohort_ts = cohort.cohort_templates(s, "CNEW0001", 640)
        assert len(cohort_ts) == MIN_COHORT + 20
        for t in got.values():
            # recomputed independently: the template as the candidate, each cohort template the probe
            scores = np.array([matcher.compare(c, matcher.Template.from_bytes(t.data)) for c in cohort_ts])
            assert t.cohort_mean == pytest.approx(scores.mean(), rel=1e-9)
            assert t.cohort_sd == pytest.approx(scores.std(), rel=1e-9) and t.cohort_sd > 0
        # a cohort size of 0 turns it off; random bytes (validate_templates off) are simply skipped
        holder(s, "CNEW0002")
        ids = holders.enroll(s, "enroller", upload("CNEW0002", new[12]), no_duplicate, cohort_size=0)["template_ids"]
        assert stats_of(s, ids) == [(None, None)] * 3
        holder(s, "CNEW0003")
        junk = [uuid.uuid4().bytes + b"tmpl" for _ in range(3)]
        out = holders.enroll(s, "enroller", upload("CNEW0003", junk), no_duplicate, cohort_size=640)
        assert out["status"] == "enrolled" and stats_of(s, out["template_ids"]) == [(None, None)] * 3
        # the cohort is capped at `size` and is the same for the same database (most recent first)
        assert len(cohort.cohort_templates(s, "CNEW0001", 300)) == 300
        a = [c.to_bytes() for c in cohort.cohort_templates(s, "CNEW0001", 300)]
        assert a == [c.to_bytes() for c in cohort.cohort_templates(s, "CNEW0001", 300)]


def test_feed_fetch_and_station_carry_the_statistics(db, pool, tmp_path):
    base, new = pool
    with db.session() as s:
        _, tok_a = devices.create_device(s, "sys", "site-a", "desk-a", create_site_if_missing=True)
        _, tok_b = devices.create_device(s, "sys", "site-b", "desk-b", create_site_if_missing=True)
        seed_cohort(s, variants(base, MIN_COHORT))
        holder(s, "CNEW0001")
        holders.enroll(s, "enroller", upload("CNEW0001", new[11], device="desk-a"), no_duplicate, cohort_size=640)
        holder(s, "CNEW0002")
        holders.enroll(s, "enroller", upload("CNEW0002", new[12], device="desk-a"), no_duplicate, cohort_size=0)
        s.commit()
        want = {t.id: (t.cohort_mean, t.cohort_sd) for t in s.scalars(
            select(Template).where(Template.card_number.in_(("CNEW0001", "CNEW0002"))))}
        assert sum(v != (None, None) for v in want.values()) == 3  # CNEW0001's three
        record = sites.fetch_card(s, devices.get_device(s, "desk-b"), "CNEW0001")
        assert {t.template_id: (t.cohort_mean, t.cohort_sd) for t in record.templates} == {
            k: v for k, v in want.items() if v != (None, None)}
        s.rollback()
    served = ServedApp(create_app(db.settings, db)).start()
    try:
        url = f"http://127.0.0.1:{served.port}"
        store = Store.open(tmp_path / "a.db", new_key())
        sync = TemplateSync(RegistrySection(url=url, timeout_s=10, page_limit=500), "desk-a", store, token=tok_a)
        sync.sync_once()
        got = {t.template_id: (t.cohort_mean, t.cohort_sd)
               for card in ("CNEW0001", "CNEW0002") for t in store.templates_for(card)}
        assert got == want
        # the station decides CNEW0001 on the cohort rule: the holder's fourth press is accepted at
        # its winning template's own raw threshold, the other finger is not; CNEW0002 (no
        # statistics) on the raw rule
        verifier = Verifier(StationSection(device_id="desk-a", site_id="site-a", min_quality=20), store,
                            Outbox(store), Engine("fmr_1e-4"), display=Screen())
        c3 = matcher.cohort_threshold("fmr_1e-4", 3)
        own = {(round(m + sd * c3, 4)) for m, sd in want.values() if sd is not None}
        r = verifier.verify_image("CNEW0001", new["press"][11])
        assert r.outcome == Outcome.MATCH and round(r.threshold, 4) in own and r.score >= r.threshold
        r = verifier.verify_image("CNEW0001", new["press"][12])
        assert r.outcome == Outcome.NO_MATCH and round(r.threshold, 4) in own and r.score < r.threshold
        r = verifier.verify_image("CNEW0002", new["press"][12])
        assert r.outcome == Outcome.MATCH
        assert r.threshold == pytest.approx(matcher.decision_threshold("fmr_1e-4", 3), abs=1e-4)
        # site B's station fetches CNEW0001 on demand: the statistics come with the card record
        store_b = Store.open(tmp_path / "b.db", new_key())
        sync_b = TemplateSync(RegistrySection(url=url, timeout_s=10, page_limit=500,
                                              fetch=FetchSection(timeout_s=5, tries=1)), "desk-b", store_b,
                              token=tok_b)
        sync_b.sync_once()
        assert fetched.ensure(store_b, "CNEW0001") is None
        got_b = {t.template_id: (t.cohort_mean, t.cohort_sd) for t in store_b.templates_for("CNEW0001")}
        assert got_b == {k: v for k, v in want.items() if v != (None, None)}
        for c in (sync, sync_b):
            c.client.close()
        store.close()
        store_b.close()
    finally:
        served.stop()
