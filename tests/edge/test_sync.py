"""Template sync over HTTP: incremental pages apply; a malformed update changes nothing."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from fpverify.edge.cache import Store, new_key
from fpverify.edge.config import RegistrySection
from fpverify.edge.sync import SyncError, TemplateSync, matcher_template_check
from fpverify.edge.wire import CardStatus, TemplateRevoke, TemplatesChanged
from tests.edge.helpers import feed, template_add
from tests.edge.registry_stub_server import RegistryServer


@pytest.fixture(scope="module")
def real_templates() -> list[bytes]:
    """Templates the matcher really produced (from synthetic fingerprints)."""
    from fpverify import matcher
    from fpverify.matcher import synth

    out = []
    for seed in (11, 12):
        master = synth.generate_finger(seed)
        for k in range(2):
            out.append(matcher.extract(synth.impression(master, k)[0]).to_bytes())
    return out


@pytest.fixture
def registry():
    server = RegistryServer()
    yield server
    server.close()


def make_sync(registry, store) -> TemplateSync:
    cfg = RegistrySection(url=registry.url, timeout_s=5, page_limit=2)
    return TemplateSync(cfg, "desk-01", store, token="device-token-123")


def snapshot(store: Store, path) -> tuple:
    return (store.feed_version(), store.counts(), hashlib.sha256(path.read_bytes()).hexdigest())


def test_incremental_pages_apply_in_order(tmp_path, registry, real_templates):
    t = real_templates
    registry.set_feed(0, feed(0, [template_add(1, "a", "CARD0001", t[0]), template_add(2, "b", "CARD0001", t[1])],
                              more=True))
    registry.set_feed(2, feed(2, [template_add(3, "c", "CARD0002", t[2]),
                                  CardStatus(version=5, card_number="CARD0003", status="blocked")], version=6))
    with Store.open(tmp_path / "s.db", new_key()) as store:
        sync = make_sync(registry, store)
        assert sync.sync_once() == 4
        assert store.feed_version() == 6
        assert [x.template_id for x in store.templates_for("CARD0001")] == ["a", "b"]
        assert store.card_status("CARD0003") == "blocked"
        assert [r["query"]["since"] for r in registry.requests] == [["0"], ["2"]]
        assert all(r["auth"] == "Bearer device-token-123" for r in registry.requests)
        # a revocation later
        registry.set_feed(6, feed(6, [TemplateRevoke(version=7, template_id="a", card_number="CARD0001")]))
        assert sync.sync_once() == 1
        assert [x.template_id for x in store.templates_for("CARD0001")] == ["b"]
        sync.stop()


@pytest.mark.parametrize("case", ["not_json", "schema", "out_of_order", "bad_template", "wrong_since", "http_500"])
def test_malformed_update_is_rejected_whole(tmp_path, registry, real_templates, case):
    t = real_templates
    path = tmp_path / "s.db"
    with Store.open(path, new_key()) as store:
        store.apply_feed(feed(0, [template_add(1, "a", "CARD0001", t[0])]))
        good = template_add(2, "b", "CARD0001", t[1])
        bodies = {
            "not_json": b"<html>proxy error</html>",
            "schema": json.dumps({"v": 1, "since": 1, "version": 3, "changes": [
                json.loads(good.model_dump_json()), {"op": "add", "version": 3, "template_id": "c"}]}).encode(),
            "out_of_order": feed(1, [good, template_add(2, "c", "CARD0002", t[2])], version=3),
            "bad_template": feed(1, [good, template_add(3, "c", "CARD0002", b"\x00" * 40)]),
            "wrong_since": feed(0, [good]),
            "http_500": b'{"detail": "boom"}',
        }
        registry.set_feed(1, bodies[case], status=500 if case == "http_500" else 200)
        before = snapshot(store, path)
        sync = make_sync(registry, store)
        with pytest.raises(SyncError) as info:
            sync.sync_once()
        message = str(info.value)
        expected = {"not_json": "malformed template feed", "schema": "malformed template feed",
                    "out_of_order": "out of order", "bad_template": "template c for card CARD0002 is not a valid",
                    "wrong_since": "starts at version 0", "http_500": "answered 500"}[case]
        assert expected in message
        assert snapshot(store, path) == before  # nothing applied, file untouched
        assert [x.template_id for x in store.templates_for("CARD0001")] == ["a"]
        sync.stop()


def test_unreachable_registry_is_a_clear_error(tmp_path):
    from fpverify.services import free_port

    with Store.open(tmp_path / "s.db", new_key()) as store:
        sync = TemplateSync(RegistrySection(url=f"http://127.0.0.1:{free_port()}", timeout_s=2), "desk-01", store,
                            token="x")
        with pytest.raises(SyncError, match="unreachable"):
            sync.sync_once()
        sync.stop()


def test_matcher_check_rejects_garbage():
    with pytest.raises(ValueError):
        matcher_template_check(b"\x00" * 40)


def test_notification_triggers_a_pull(tmp_path, registry, real_templates):
    registry.set_feed(0, feed(0, [template_add(1, "a", "CARD0001", real_templates[0])]))
    with Store.open(tmp_path / "s.db", new_key()) as store:
        cfg = RegistrySection(url=registry.url, timeout_s=5, sync_interval_s=3600)
        sync = TemplateSync(cfg, "desk-01", store, token="x")
        sync.start()  # first pull at start
        deadline = time.monotonic() + 20
        while store.feed_version() != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.feed_version() == 1
        registry.set_feed(1, feed(1, [template_add(2, "b", "CARD0001", real_templates[1])]))
        sync.notify(TemplatesChanged(version=2))  # what the MQTT link calls
        deadline = time.monotonic() + 20
        while store.feed_version() != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.feed_version() == 2
        sync.stop()
