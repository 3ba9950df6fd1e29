"""The per-site template feed at the registry (issue 18), on SQLite and on PostgreSQL: assignments
and their reasons, expiry, the duplicate index seeing each template once however many sites get
it, and migration 0007's back-fill of existing holders."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from fpverify.edge import wire
from fpverify.server.crud import devices, holders, sites, stays
from fpverify.server.crud.errors import NotFound
from fpverify.server.db import Database
from fpverify.server.dedup import index_for
from fpverify.server.ingest import feed
from fpverify.server.models import (
    CardHolder,
    Consent,
    Counter,
    Device,
    Enrollment,
    FeedChange,
    HolderSite,
    InpatientStay,
    Site,
    Template,
    utcnow,
)
from tests.server.helpers import make_settings

KEY = "national-id-key"


def _holder(s, card: str) -> None:
    holders.create_holder(s, "enr", KEY, card, f"Holder {card}", f"ID{card}")
    holders.record_consent(s, "enr", card, datetime.now(UTC) - timedelta(minutes=1), "fingerprint", "op-1")


def _enroll(s, device: str, card: str, n: int = 3) -> list[str]:
    up = wire.EnrollmentUpload(
        enrollment_id=uuid.uuid4(), device_id=device, card_number=card, operator_id="op-1",
        consent=wire.Consent(given_at=datetime.now(UTC), scope="fp", witnessed_by="op-1"),
        fingers=[wire.EnrolledFinger(finger=1, templates=[secrets.token_bytes(64) for _ in range(n)],
                                     qualities=[80] * n)])
    return holders.enroll(s, "enr", up, lambda *_: None)["template_ids"]


@pytest.fixture
def db(any_db):
    with any_db.session() as s:
        for site, dev in (("site-a", "desk-a"), ("site-b", "desk-b"), ("site-c", "desk-c")):
            devices.create_device(s, "sys", site, dev, create_site_if_missing=True)
        s.commit()
    return any_db


def _dev(s, device_id: str) -> Device:
    return s.get(Device, device_id)


def _cards(page: wire.TemplateFeed) -> set[str]:
    return {c.card_number for c in page.changes}


def test_reasons_strongest_wins_discharge_expiry_and_hold_changes(db):
    with db.session() as s:
        _holder(s, "C0001")
        _enroll(s, "desk-a", "C0001")
        assert s.get(HolderSite, ("C0001", "site-a")).reason == "enrolled"
        # fetched at B, then admitted at B: the stronger reason replaces the weaker, and B's stations
        # are told the card is now kept for good (a new hold, with the full set)
        record = sites.fetch_card(s, _dev(s, "desk-b"), "C0001")
        assert record.held == "fetched" and len(record.templates) == 3
        stay = stays.admit(s, "enr", "C0001", "site-b", utcnow(), "2", "7", 24)
        assert s.get(HolderSite, ("C0001", "site-b")).reason == "admitted"
        sites.assign(s, "enr", "C0001", "site-b", "fetched")  # never weaker again
        assert s.get(HolderSite, ("C0001", "site-b")).reason == "admitted"
        s.commit()
        holds = [c.held for c in feed.build_feed(s, _dev(s, "desk-b"), 0, 1000).changes if c.op == "hold"]
        assert holds == ["fetched", "site"]
        # discharge: a recent registration, which expires; the enrollment at A never does
        stays.discharge(s, "enr", stay.id)
        assert s.get(HolderSite, ("C0001", "site-b")).reason == "registered"
        later = utcnow() + timedelta(days=91)
        assert sites.expire(s, 90, now=later) == 1
        s.commit()
        assert s.get(HolderSite, ("C0001", "site-b")) is None and s.get(HolderSite, ("C0001", "site-a"))
        last = feed.build_feed(s, _dev(s, "desk-b"), 0, 1000).changes[-1]
        assert (last.op, last.held) == ("hold", "none")
        with pytest.raises(NotFound):
            sites.fetch_card(s, _dev(s, "desk-b"), "C9999")
        with pytest.raises(NotFound):
            sites.assign(s, "enr", "C0001", "no-such-site", "registered")


def test_a_site_never_gets_another_sites_holder_even_in_passing(db):
    with db.session() as s:
        _holder(s, "C0001")
        _holder(s, "C0002")
        _enroll(s, "desk-a", "C0001")
        _enroll(s, "desk-b", "C0002")
        holders.set_status(s, "sup", "C0002", "blocked")
        sites.fetch_card(s, _dev(s, "desk-c"), "C0002")  # C fetched it, then the assignment ends
        sites.expire(s, 90, now=utcnow() + timedelta(days=91))
        s.commit()
        a, b = feed.build_feed(s, _dev(s, "desk-a"), 0, 1000), feed.build_feed(s, _dev(s, "desk-b"), 0, 1000)
        c = feed.build_feed(s, _dev(s, "desk-c"), 0, 1000)
        assert _cards(a) == {"C0001"} and _cards(b) == {"C0002"}
        # a new station of C reads from 0: the holds only, never the ended holder's templates or status
        assert [(ch.op, ch.card_number) for ch in c.changes] == [("hold", "C0002"), ("hold", "C0002")]
        # paging: at most `limit` rows a page, versions increasing, the last page at the global version
        seen, since, more = [], 0, True
        while more:
            page = feed.build_feed(s, _dev(s, "desk-a"), since, 2)
            assert page.since == since and all(ch.version > since for ch in page.changes)
            seen += page.changes
            since, more = page.version, page.more
        assert [ch.version for ch in seen] == [ch.version for ch in a.changes]
        assert since == feed.current_version(s)


def test_duplicate_index_sees_each_template_once_across_sites(db):
    with db.session() as s:
        _holder(s, "C0001")
        tids = _enroll(s, "desk-a", "C0001")
        stays.admit(s, "enr", "C0001", "site-b", utcnow(), None, None, 24)
        sites.fetch_card(s, _dev(s, "desk-c"), "C0001")
        s.commit()
        more = _enroll(s, "desk-a", "C0001", n=4)  # fanned out to three sites
        s.commit()
        sent = s.scalars(select(FeedChange.site_id).where(FeedChange.template_id == more[0], FeedChange.op == "add"))
        assert sorted(sent, key=str) == [None, "site-a", "site-b", "site-c"]
        idx = index_for(s)
        with idx.lock:
            idx.refresh(s)
            assert len(idx) == 7 and idx.version == feed.current_version(s)
        holders.revoke_template(s, "sup", tids[0], "wrong finger")
        s.commit()
        with idx.lock:
            idx.refresh(s)
            assert len(idx) == 6
            idx.rebuild(s)  # a restarted registry: the same
            assert len(idx) == 6


def test_migration_0007_backfills_existing_holders(any_url):
    db = Database(settings=make_settings(any_url))
    db.migrate("0006")
    now = utcnow()
    with db.engine.begin() as c:
        c.execute(insert(Site.__table__), [{"id": x, "name": x, "created_at": now} for x in ("site-a", "site-b", "site-c")])
        c.execute(insert(Device.__table__), [
            {"id": d, "site_id": x, "token_hash": secrets.token_hex(32), "disabled": False, "online": False,
             "created_at": now} for d, x in (("desk-a", "site-a"), ("desk-b", "site-b"), ("desk-c", "site-c"))])
        c.execute(insert(CardHolder.__table__), [
            {"card_number": k, "name": k, "national_id_hmac": k, "status": st, "created_at": now, "updated_at": now}
            for k, st in (("C0001", "active"), ("C0002", "blocked"))])
        c.execute(insert(Consent.__table__), [{"id": i, "card_number": k, "given_at": now, "scope": "fp",
                                               "witnessed_by": "op", "recorded_by": "enr", "recorded_at": now}
                                              for i, k in ((1, "C0001"), (2, "C0002"))])
        versions = 0
        for k, site in (("C0001", "site-a"), ("C0002", "site-b")):
            eid = str(uuid.uuid4())
            c.execute(insert(Enrollment.__table__), [{
                "id": eid, "card_number": k, "role": "holder", "device_id": f"desk-{site[-1]}", "site_id": site,
                "operator_id": "op", "uploaded_by": "enr", "consent_id": 1 if k == "C0001" else 2,
                "status": "enrolled", "created_at": now}])
            for n in range(2):
                tid = f"{k}-t{n}"
                c.execute(insert(Template.__table__), [{
                    "id": tid, "card_number": k, "enrollment_id": eid, "role": "holder", "finger": 1, "quality": 80,
                    "data": secrets.token_bytes(40), "status": "active", "enrolled_by": "op",
                    "device_id": f"desk-{site[-1]}", "site_id": site, "enrolled_at": now}])
                versions += 1  # the old global log: site_id NULL
                c.execute(insert(FeedChange.__table__), [{"version": versions, "op": "add", "card_number": k,
                                                          "template_id": tid, "status": None, "site_id": None,
                                                          "at": now}])
        c.execute(insert(InpatientStay.__table__), [{
            "card_number": "C0001", "site_id": "site-b", "admitted_at": now, "recheck_interval_hours": 24,
            "admitted_by": "enr", "created_at": now}])
        c.execute(update(Counter.__table__).where(Counter.name == "feed").values(value=versions))
    db.migrate()
    with db.session() as s:
        got = {(r.card_number, r.site_id, r.reason) for r in s.scalars(select(HolderSite))}
        assert got == {("C0001", "site-a", "enrolled"), ("C0002", "site-b", "enrolled"),
                       ("C0001", "site-b", "admitted")}
        a = feed.build_feed(s, _dev(s, "desk-a"), 0, 1000)
        b = feed.build_feed(s, _dev(s, "desk-b"), 0, 1000)
        assert [ch.op for ch in a.changes] == ["hold", "add", "add", "card"] and _cards(a) == {"C0001"}
        assert _cards(b) == {"C0001", "C0002"}
        assert [ch.status for ch in b.changes if ch.op == "card" and ch.card_number == "C0002"] == ["blocked"]
        assert feed.build_feed(s, _dev(s, "desk-c"), 0, 1000).changes == []
        assert a.version > versions and feed.current_version(s) == max(ch.version for ch in b.changes)
    db.dispose()


def test_results_at_a_site_keep_its_fetched_assignment_alive(db):
    """A holder who keeps coming to a site where the card was fetched stays assigned there: each
    stored result renews it; a site the holder stopped visiting lets it expire."""
    from fpverify.edge.outbox import new_result_id
    from fpverify.server.ingest.writer import BatchWriter, Message

    with db.session() as s:
        _holder(s, "C0002")
        _enroll(s, "desk-a", "C0002")
        sites.fetch_card(s, _dev(s, "desk-b"), "C0002")
        sites.fetch_card(s, _dev(s, "desk-c"), "C0002")
        old = utcnow() - timedelta(days=80)
        s.execute(update(HolderSite).where(HolderSite.site_id.in_(["site-b", "site-c"])).values(last_seen=old))
        s.commit()
    visit = wire.VerificationResult(result_id=new_result_id(), device_id="desk-b", site_id="site-b",
                                    card_number="C0002", outcome="match", purpose="billing",
                                    captured_at=datetime.now(UTC), score=0.4, threshold=0.2)
    unsigned_ok = db.settings.model_copy(update={"mode": "development"})  # an unsigned test result is stored
    BatchWriter(db, unsigned_ok).write([Message(wire.Topics("desk-b").results, visit.model_dump_json().encode(), 0, 1)])
    with db.session() as s:
        assert s.get(HolderSite, ("C0002", "site-b")).last_seen > utcnow() - timedelta(minutes=5)
        assert sites.expire(s, days=30) == 1  # site C: not seen since the fetch
        s.commit()
        assert s.get(HolderSite, ("C0002", "site-c")) is None
        assert s.get(HolderSite, ("C0002", "site-b")).reason == "fetched"
        assert s.get(HolderSite, ("C0002", "site-a")).reason == "enrolled"
