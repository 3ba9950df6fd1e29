"""Templates where they are needed (issue 18), end to end: the registry on the private PostgreSQL
under uvicorn, real station stores (SQLCipher) following it with the real TemplateSync, and the
real Verifier and matcher on synthetic fingers. A station of site A never receives site B's
holders; a card it lacks is fetched on demand, verified, audited and kept current by A's feed;
offline it is `not_enrolled` here; the station evicts only what it fetched; an expired assignment
leaves the feed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from fpverify.edge import fetched
from fpverify.edge.cache import Store, new_key
from fpverify.edge.config import FetchSection, RegistrySection, StationSection
from fpverify.edge.outbox import Outbox
from fpverify.edge.sync import TemplateSync
from fpverify.edge.wire import Outcome
from fpverify.edge.workflow import NOT_HERE_MESSAGE, Engine, Verifier
from fpverify.server.app import create_app
from fpverify.server.crud import devices, holders, sites, stays
from fpverify.server.db import Database
from fpverify.server.dedup import find_duplicate
from fpverify.server.models import AuditEntry, HolderSite, utcnow
from fpverify.services import ServedApp
from tests.edge.helpers import DELEGATE, HOLDER, STRANGER, sensor_fingers
from tests.server.helpers import make_settings

pytestmark = pytest.mark.slow  # PostgreSQL, uvicorn and the matcher, end to end

KEY = "national-id-key"
HA, HB, HB2, HU = "CARDA001", "CARDB001", "CARDB002", "CARDU001"  # A's, B's, B's (blocked), enrolled nowhere


@pytest.fixture(scope="module")
def fingers():
    return sensor_fingers()


@dataclass
class Registry:
    db: Database
    url: str
    tokens: dict[str, str]
    served: ServedApp

    def session(self):
        return self.db.session()


def _enroll(s, device: str, card: str, images: list) -> list[str]:
    from fpverify import matcher
    from fpverify.edge import wire

    templates = [matcher.extract(img).to_bytes() for img in images]
    upload = wire.EnrollmentUpload(
        enrollment_id=uuid.uuid4(), device_id=device, card_number=card, operator_id="op-1",
        consent=wire.Consent(given_at=datetime.now(UTC), scope="fp", witnessed_by="op-1"),
        fingers=[wire.EnrolledFinger(finger=2, templates=templates, qualities=[80] * len(templates))])
    out = holders.enroll(s, "enroller", upload, lambda s_, c, p: find_duplicate(s_, c, p, "fmr_1e-4"))
    assert out["status"] == "enrolled", out
    return out["template_ids"]


def _holder(s, card: str) -> None:
    holders.create_holder(s, "enroller", KEY, card, f"Holder {card}", f"ID-{card}")
    holders.record_consent(s, "enroller", card, datetime.now(UTC) - timedelta(minutes=1), "fingerprint", "op-1")


@pytest.fixture
def registry(pg_url, fingers):
    db = Database(settings=make_settings(pg_url, card_fetch_per_minute=1000))
    db.migrate()
    tokens = {}
    with db.session() as s:
        for site, dev in (("site-a", "desk-a"), ("site-a", "desk-a2"), ("site-b", "desk-b")):
            _, tokens[dev] = devices.create_device(s, "sys", site, dev, create_site_if_missing=True)
        for card in (HA, HB, HB2, HU):
            _holder(s, card)
        _enroll(s, "desk-a", HA, fingers[HOLDER][:3])
        _enroll(s, "desk-b", HB, fingers[DELEGATE][:3])
        _enroll(s, "desk-b", HB2, fingers[STRANGER][:3])
        holders.set_status(s, "supervisor", HB2, "blocked")
        s.commit()
    served = ServedApp(create_app(db.settings, db)).start()
    reg = Registry(db, f"http://127.0.0.1:{served.port}", tokens, served)
    yield reg
    served.stop()
    db.dispose()


@dataclass
class Desk:
    store: Store
    sync: TemplateSync
    verifier: Verifier
    shown: list


class Screen:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def show(self, prompt) -> None:
        pass

    def outcome(self, result, message: str) -> None:
        self.messages.append(message)


@pytest.fixture
def desk(tmp_path, registry):
    made = []

    def make(device: str = "desk-a", site: str = "site-a", url: str | None = None, **policy) -> Desk:
        store = Store.open(tmp_path / f"{device}-{len(made)}.db", new_key())
        cfg = RegistrySection(url=url or registry.url, timeout_s=10, page_limit=500,
                              fetch=FetchSection(timeout_s=2, tries=1, **policy))
        sync = TemplateSync(cfg, device, store, token=registry.tokens[device])
        screen = Screen()
        verifier = Verifier(StationSection(device_id=device, site_id=site, min_quality=20), store, Outbox(store),
                            Engine("fmr_1e-4"), display=screen)
        d = Desk(store, sync, verifier, screen.messages)
        made.append(d)
        return d

    yield make
    for d in made:
        d.sync.client.close()
        d.store.close()


def _cards(store: Store) -> set[str]:
    return {r[0] for r in store.query("SELECT card_number FROM templates UNION SELECT card_number FROM cards")}


def test_a_station_gets_its_site_only_and_an_admission_brings_the_holder(registry, desk):
    a, b = desk("desk-a", "site-a"), desk("desk-b", "site-b")
    a.sync.sync_once()
    b.sync.sync_once()
    assert _cards(a.store) == {HA} and len(a.store.templates_for(HA)) == 3
    assert _cards(b.store) == {HB, HB2} and b.store.card_status(HB2) == "blocked"
    # not even a card status or a card number of site B in A's feed, read raw from the registry
    raw = httpx.get(f"{registry.url}/api/v1/devices/desk-a/templates", params={"since": 0},
                    headers={"Authorization": f"Bearer {registry.tokens['desk-a']}"}).text
    assert HA in raw and "CARDB" not in raw and HU not in raw
    # an unenrolled holder admitted at B: B's stations know the card (not enrolled, no fetch needed)
    with registry.session() as s:
        stays.admit(s, "enroller", HA, "site-b", utcnow(), "3", "12", 24)
        stays.admit(s, "enroller", HU, "site-b", utcnow(), "3", "13", 24)
        s.commit()
    b.sync.sync_once()
    assert len(b.store.templates_for(HA)) == 3 and b.store.card_status(HU) == "active"
    assert fetched.held(b.store, HA) == "site"  # kept by the feed: the station never evicts it
    a.sync.sync_once()
    assert _cards(a.store) == {HA}  # A unchanged: B's admission is B's
    # a block of a holder assigned to two sites reaches both
    with registry.session() as s:
        holders.set_status(s, "supervisor", HA, "blocked")
        s.commit()
    a.sync.sync_once()
    b.sync.sync_once()
    assert a.store.card_status(HA) == b.store.card_status(HA) == "blocked"


def test_fetch_on_demand_verifies_is_audited_and_follows_the_feed(registry, desk, fingers):
    a = desk("desk-a", "site-a")
    a.sync.sync_once()
    assert not a.store.has_card(HB)
    r = a.verifier.verify_image(HB, fingers[DELEGATE][3])  # site B's holder at a desk of site A
    assert r.outcome == Outcome.MATCH, r
    assert len(a.store.templates_for(HB)) == 3 and fetched.held(a.store, HB) == "fetched"
    with registry.session() as s:
        audited = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "card.fetch")))
        assert [(e.actor, e.entity_id) for e in audited] == [("device:desk-a", HB)]
        assert s.get(HolderSite, (HB, "site-a")).reason == "fetched"
        # a later revocation and a block reach A through its own feed
        tid = a.store.templates_for(HB)[0].template_id
        holders.revoke_template(s, "supervisor", tid, "finger injured")
        s.commit()
    a.sync.sync_once()
    assert tid not in {t.template_id for t in a.store.templates_for(HB)} and len(a.store.templates_for(HB)) == 2
    with registry.session() as s:
        holders.set_status(s, "supervisor", HB, "blocked")
        s.commit()
    a.sync.sync_once()
    assert a.verifier.verify_image(HB, fingers[DELEGATE][3]).outcome == Outcome.CARD_BLOCKED
    # the other station of site A gets the fetched holder from the feed, as evictable
    a2 = desk("desk-a2", "site-a")
    a2.sync.sync_once()
    assert len(a2.store.templates_for(HB)) == 2 and fetched.held(a2.store, HB) == "fetched"
    # a blocked card of B fetched from A is blocked at once
    assert a.verifier.verify_image(HB2, fingers[STRANGER][3]).outcome == Outcome.CARD_BLOCKED


def test_fetch_refusals_bad_input_and_offline(registry, desk, fingers, tmp_path):
    h = {"Authorization": f"Bearer {registry.tokens['desk-a']}"}
    api = f"{registry.url}/api/v1/devices"
    assert httpx.get(f"{api}/desk-b/cards/{HB}", headers=h).status_code == 403  # another device's id
    assert httpx.get(f"{api}/desk-a/cards/{HB}").status_code == 401  # no token
    assert httpx.get(f"{api}/desk-a/cards/NO-SUCH-1", headers=h).status_code == 404
    for bad in ("ab", "CARD%21001", "x" * 33):
        r = httpx.get(f"{api}/desk-a/cards/{bad}", headers=h)
        assert r.status_code == 422, (bad, r.status_code)
    with registry.session() as s:
        notes = {(e.entity_id, e.note) for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "card.fetch"))}
        assert ("NO-SUCH-1", "unknown card") in notes
        assert s.get(HolderSite, (HB, "site-a")) is None  # refused fetches assign nothing
    a = desk("desk-a", "site-a")
    r = a.verifier.verify_image("NO-SUCH-1", fingers[HOLDER][3])
    # the registry knows no such holder: not enrolled anywhere (the patient may enroll), not "not here"
    assert r.outcome == Outcome.NOT_ENROLLED and r.detail == fetched.UNKNOWN_AT_REGISTRY
    assert a.shown[-1] != NOT_HERE_MESSAGE
    # offline: nothing listens at the registry's address; the desk answers at once, not enrolled here
    dead = desk("desk-a", "site-a", url="http://127.0.0.1:9")
    r = dead.verifier.verify_image(HB, fingers[DELEGATE][3])
    assert r.outcome == Outcome.NOT_ENROLLED and "offline" in r.detail and "本站未登记" in r.detail
    assert dead.shown[-1] == NOT_HERE_MESSAGE and not dead.store.has_card(HB)
    # a card the station holds still verifies offline
    dead.store.apply_feed(a.sync.fetch(0))  # what the station had synced before the network went
    assert dead.verifier.verify_image(HA, fingers[HOLDER][3]).outcome == Outcome.MATCH


def test_eviction_drops_fetched_cards_only_and_expiry_leaves_the_feed(registry, desk, fingers):
    a = desk("desk-a", "site-a", max_cards=1, idle_days=30)
    a.sync.sync_once()
    assert a.sync.fetch_card(HB) is None
    assert a.sync.fetch_card(HB2) is None  # the second fetched card: HB, least recently used, goes
    assert fetched.held(a.store, HB) == "evicted" and not a.store.has_card(HB)
    assert a.store.has_card(HB2) and len(a.store.templates_for(HA)) == 3
    # the feed's changes about an evicted card are not applied piecemeal
    with registry.session() as s:
        holders.set_status(s, "supervisor", HB, "blocked")
        s.commit()
    a.sync.sync_once()
    assert not a.store.has_card(HB)
    # idle: a month later every fetched card goes; the site's own card stays, whatever the limits
    assert fetched.evict(a.store, 0, 30, now=datetime.now(UTC) + timedelta(days=31)) == 1
    assert _cards(a.store) == {HA} and fetched.held(a.store, HA) == "site"
    # presented again: fetched again, whole
    assert a.verifier.verify_image(HB, fingers[DELEGATE][3]).outcome == Outcome.CARD_BLOCKED
    assert fetched.held(a.store, HB) == "fetched" and len(a.store.templates_for(HB)) == 3
    # the registry ends the fetched assignments not seen for the period: A's feed drops them
    with registry.session() as s:
        ended = sites.expire(s, registry.db.settings.site_assignment_days, now=utcnow() + timedelta(days=91))
        s.commit()
    assert ended == 2  # HB and HB2 at site A; the enrolled ones never expire
    a.sync.sync_once()
    assert _cards(a.store) == {HA} and fetched.held(a.store, HB) is None
    with registry.session() as s:
        holders.set_status(s, "supervisor", HB, "active")  # later changes no longer go to site A
        s.commit()
    raw = httpx.get(f"{registry.url}/api/v1/devices/desk-a/templates", params={"since": a.store.feed_version()},
                    headers={"Authorization": f"Bearer {registry.tokens['desk-a']}"}).json()
    assert raw["changes"] == []
    # a brand-new station of site A fills from 0: HA only (B's holders passed through and left)
    fresh = desk("desk-a2", "site-a")
    fresh.sync.sync_once()
    assert _cards(fresh.store) == {HA}


def test_rate_limit_per_device(tmp_path, pg_url):
    from fastapi.testclient import TestClient

    db = Database(settings=make_settings(pg_url, card_fetch_per_minute=3))
    db.migrate()
    with db.session() as s:
        _, tok = devices.create_device(s, "sys", "site-a", "desk-a", create_site_if_missing=True)
        _, other = devices.create_device(s, "sys", "site-a", "desk-z")
        _holder(s, HU)
        s.commit()
    with TestClient(create_app(db.settings, db)) as c:
        got = [c.get(f"/api/v1/devices/desk-a/cards/{HU}", headers={"Authorization": f"Bearer {tok}"}).status_code
               for _ in range(5)]
        assert got == [200, 200, 200, 429, 429]
        assert c.get(f"/api/v1/devices/desk-z/cards/{HU}",
                     headers={"Authorization": f"Bearer {other}"}).status_code == 200  # per device
    with db.session() as s:
        assert len(list(s.scalars(select(AuditEntry).where(AuditEntry.action == "card.fetch_refused")))) == 2
    db.dispose()
