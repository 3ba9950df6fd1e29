"""Cards fetched on demand at the station (issue 18): holds from the feed, eviction of fetched cards
only, stale or malformed fetched records refused, against the real SQLCipher store and a real HTTP
server standing in for the registry (the registry side: tests/e2e/test_site_feed.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fpverify.edge import fetched
from fpverify.edge.cache import Store, new_key
from fpverify.edge.config import FetchSection, RegistrySection
from fpverify.edge.sync import TemplateSync
from fpverify.edge.wire import CardHeld, CardRecord, CardStatus
from tests.edge.helpers import feed, template_add
from tests.edge.registry_stub_server import RegistryServer

BLOB = bytes(range(64))


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "s.db", new_key()) as s:
        yield s


@pytest.fixture
def registry():
    server = RegistryServer()
    yield server
    server.close()


def record(card: str, version: int, n: int = 2, held: str = "fetched", status: str = "active") -> CardRecord:
    return CardRecord(card_number=card, status=status, held=held, version=version,
                      templates=[template_add(version, f"{card}-{i}", card, BLOB) for i in range(n)])


def test_holds_from_the_feed_keep_fetch_and_drop(store):
    store.apply_feed(feed(0, [CardHeld(version=1, card_number="SITE0001", held="site"),
                              template_add(2, "s1", "SITE0001", BLOB),
                              CardStatus(version=3, card_number="SITE0001", status="active"),
                              CardHeld(version=4, card_number="GONE0001", held="fetched"),
                              template_add(5, "g1", "GONE0001", BLOB),
                              CardHeld(version=6, card_number="GONE0001", held="none")]))
    assert fetched.held(store, "SITE0001") == "site" and store.has_card("SITE0001")
    assert not store.has_card("GONE0001") and fetched.held(store, "GONE0001") is None
    # no fetched card to evict: the site's card stays whatever the limits
    assert fetched.evict(store, 0, 1, now=datetime.now(UTC) + timedelta(days=400)) == 0
    assert store.has_card("SITE0001")


def test_eviction_least_recently_used_then_idle_and_skipped_feed_changes(store):
    t0 = datetime.now(UTC)
    for k, card in enumerate(("FTCH0001", "FTCH0002", "FTCH0003")):
        fetched.store_card(store, record(card, 1), now=t0 + timedelta(minutes=k))
    fetched.note_use(store, "FTCH0001", now=t0 + timedelta(minutes=10))  # used again: most recent now
    assert fetched.evict(store, 2, 30, now=t0 + timedelta(minutes=11)) == 1
    assert fetched.held(store, "FTCH0002") == "evicted" and not store.has_card("FTCH0002")
    assert store.has_card("FTCH0001") and store.has_card("FTCH0003")
    # the feed's later changes about the evicted card are not applied piecemeal
    store.apply_feed(feed(0, [template_add(7, "new", "FTCH0002", BLOB),
                              CardStatus(version=8, card_number="FTCH0002", status="blocked")]))
    assert not store.has_card("FTCH0002")
    # a hold from the feed (the site holds it now) lifts the eviction; its full set follows
    store.apply_feed(feed(8, [CardHeld(version=9, card_number="FTCH0002", held="site"),
                              template_add(10, "again", "FTCH0002", BLOB)]))
    assert fetched.held(store, "FTCH0002") == "site" and len(store.templates_for("FTCH0002")) == 1
    assert fetched.evict(store, 0, 30, now=t0 + timedelta(days=31)) == 2  # idle: both fetched ones
    assert store.has_card("FTCH0002") and not store.has_card("FTCH0001")


def test_stale_and_malformed_records_are_refused(store, registry):
    store.apply_feed(feed(0, [], version=10))
    with pytest.raises(fetched.StaleRecord):
        fetched.store_card(store, record("CARD0001", 9))
    bad = record("CARD0002", 10).model_copy(update={"templates": [template_add(10, "x", "CARD0009", BLOB)]})
    with pytest.raises(fetched.CacheError, match="another card"):
        fetched.store_card(store, bad)
    assert not store.has_card("CARD0001") and not store.has_card("CARD0002")
    sync = TemplateSync(RegistrySection(url=registry.url, fetch=FetchSection(tries=1, timeout_s=2)), "desk-01",
                        store, token="device-token-123", template_check=None)
    registry.set_feed(0, record("CARD0001", 9))  # older than the cache: fetched once more, then given up
    assert sync.fetch_card("CARD0001") == "the card changed while it was fetched"
    assert [r["path"] for r in registry.requests] == ["/api/v1/devices/desk-01/cards/CARD0001"] * 2
    registry.set_feed(0, record("CARD0003", 12))  # an answer about another card than asked
    assert "another card" in sync.fetch_card("CARD0001")
    registry.set_feed(0, b'{"kind": "card_record", "card_number": "CARD0001"}')
    assert sync.fetch_card("CARD0001").startswith("fetched card refused: malformed card record")
    registry.set_feed(0, b'{"detail": "too many"}', status=429)
    assert sync.fetch_card("CARD0001") == "registry answered 429"
    assert store.counts()["cards"] == 0 and store.feed_version() == 10
    registry.set_feed(0, record("CARD0001", 12, held="site", status="blocked"))
    assert sync.fetch_card("CARD0001") is None
    assert store.card_status("CARD0001") == "blocked" and fetched.held(store, "CARD0001") == "site"
    assert store.feed_version() == 10  # a fetch never moves the feed version
    sync.client.close()


def test_garbage_template_in_a_fetched_record_changes_nothing(store, registry):
    from fpverify.edge.sync import matcher_template_check

    sync = TemplateSync(RegistrySection(url=registry.url), "desk-01", store, token="t",
                        template_check=matcher_template_check)
    registry.set_feed(0, record("CARD0001", 3))
    assert "is not a valid template" in sync.fetch_card("CARD0001")
    assert not store.has_card("CARD0001")
    sync.client.close()
