"""Template sync: pull the registry's incremental feed (adds, revocations, card status) over HTTPS.

Runs on a TemplatesChanged MQTT notification and every `sync_interval_s`. Each feed page is checked
whole before anything is applied (versions in order and after ours, every template parseable by
the matcher, delegates well formed); a malformed page is rejected with a SyncError naming the
problem and the cache stays exactly as it was. Pages apply atomically, so a failure mid-way leaves
the cache at the last good version, from where the next sync resumes.

The feed is the station's site's (issue 18). A card the cache lacks is fetched on demand
(`fetch_card`, GET /api/v1/devices/{id}/cards/{card}, the same HTTPS client and device token;
the answer is not signed, the transport and token authenticate it), checked like a feed page,
kept (edge/fetched.py) and evicted by `[registry.fetch]`. Each try is bounded by
`fetch.timeout_s`, at most `fetch.tries`; after an unreachable registry the station does not wait
on it again for `fetch.offline_s` (the desk answers `not_enrolled` here at once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import httpx
from pydantic import ValidationError

from fpverify.edge import fetched
from fpverify.edge.cache import CacheError, Store
from fpverify.edge.config import RegistrySection
from fpverify.edge.wire import CardRecord, HolderRole, TemplateAdd, TemplateFeed, TemplatesChanged

log = logging.getLogger("fpverify.edge.sync")


class SyncError(Exception):
    """The registry could not be reached or sent something we will not apply."""


def matcher_template_check(raw: bytes) -> None:
    """Default check: the matcher must be able to parse the template (ValueError otherwise)."""
    from fpverify import matcher
    matcher.Template.from_bytes(raw)


def check_template(ch: TemplateAdd, template_check: Callable[[bytes], None] | None) -> None:
    if (ch.role == HolderRole.DELEGATE) != (ch.delegate_id is not None):
        raise SyncError(f"template {ch.template_id}: delegate_id must be set exactly for delegates")
    if template_check is not None:
        try:
            template_check(ch.template)
        except (ValueError, TypeError) as exc:
            raise SyncError(f"template {ch.template_id} for card {ch.card_number} is not a valid "
                            f"template: {exc}") from exc


def check_feed(feed: TemplateFeed, since: int, template_check: Callable[[bytes], None] | None) -> None:
    if feed.since != since:
        raise SyncError(f"feed starts at version {feed.since}, asked for changes after {since}")
    if feed.version < since:
        raise SyncError(f"feed version {feed.version} is older than ours ({since})")
    last = since
    for i, ch in enumerate(feed.changes):
        if ch.version <= last:
            raise SyncError(f"change {i} has version {ch.version}, not after {last}: out of order or replayed")
        if ch.version > feed.version:
            raise SyncError(f"change {i} has version {ch.version}, beyond the feed's version {feed.version}")
        last = ch.version
        if isinstance(ch, TemplateAdd):
            check_template(ch, template_check)


class RegistryPull:
    """A pull from the registry over HTTPS with the device token, in a thread of its own: at start,
    every `interval_s`, and at once when triggered. A failed pull leaves what the station holds
    unchanged; the next one tries again. Subclasses give `sync_once` and `label` (thread and log)."""

    label = "registry pull"

    def __init__(self, cfg: RegistrySection, token: str, interval_s: float,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not cfg.url:
            raise ValueError("registry.url is not configured")
        self.interval_s = interval_s
        self.last_error: str | None = None
        self.client = httpx.Client(
            base_url=cfg.url, timeout=cfg.timeout_s, transport=transport,
            verify=str(cfg.ca_file) if cfg.ca_file else True,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        self._trigger = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def sync_once(self):
        raise NotImplementedError

    def _get(self, path: str, model, what: str, **params):
        """GET `path` and parse it as `model`; any failure is a SyncError naming `what`."""
        try:
            resp = self.client.get(path, params=params or None)
        except httpx.HTTPError as exc:
            raise SyncError(f"registry unreachable at {self.client.base_url} for the {what}: {exc}") from exc
        if resp.status_code != 200:
            raise SyncError(f"registry answered {resp.status_code} for the {what}: {resp.text[:200]}")
        try:
            return model.model_validate_json(resp.content)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise SyncError(f"malformed {what} ({exc.error_count()} problems; first at {where}: "
                            f"{first['msg']}); nothing applied") from exc

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.label.replace(" ", "-"), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._trigger.set()
        if self._thread:
            self._thread.join(10)
        self.client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except SyncError as exc:
                self.last_error = str(exc)
                log.warning("%s failed (nothing changed): %s", self.label, exc)
            except Exception as exc:  # keep the thread alive; the desk still works from what it holds
                self.last_error = str(exc)
                log.exception("%s crashed (nothing changed)", self.label)
            self._trigger.wait(self.interval_s)
            self._trigger.clear()


class TemplateSync(RegistryPull):
    label = "template sync"

    def __init__(self, cfg: RegistrySection, device_id: str, store: Store, token: str,
                 template_check: Callable[[bytes], None] | None = matcher_template_check,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(cfg, token, cfg.sync_interval_s, transport)
        self.cfg = cfg
        self.device_id = device_id
        self.store = store
        self.template_check = template_check
        self._offline_until = 0.0  # monotonic: an unreachable registry is not waited on again before
        store.fetcher = self.fetch_card

    def fetch(self, since: int) -> TemplateFeed:
        return self._get(f"/api/v1/devices/{self.device_id}/templates", TemplateFeed, "template feed",
                         since=since, limit=self.cfg.page_limit)

    def sync_once(self) -> int:
        """Pull and apply pages until the feed says no more. Returns the number of changes applied."""
        applied = 0
        with self._lock:
            for _ in range(10000):  # bounded: a registry that always says 'more' cannot spin us forever
                since = self.store.feed_version()
                feed = self.fetch(since)
                check_feed(feed, since, self.template_check)
                try:
                    self.store.apply_feed(feed)
                except CacheError as exc:
                    raise SyncError(str(exc)) from exc
                applied += len(feed.changes)
                if not feed.more or feed.version == since:
                    break
        if applied:
            log.info("template sync applied %d changes; cache at version %d", applied, self.store.feed_version())
        self.last_error = None
        self._offline_until = 0.0
        policy = self.cfg.fetch
        fetched.evict(self.store, policy.max_cards, policy.idle_days)
        return applied

    # -- on demand -----------------------------------------------------------------------------
    def fetch_card(self, card_number: str) -> str | None:
        """Fetch a card the cache lacks and keep it. None when stored; otherwise why not."""
        policy = self.cfg.fetch
        if not policy.enabled:
            return "on-demand fetch is off at this station"
        if time.monotonic() < self._offline_until:
            return "registry unreachable (offline)"
        why, tries, refetched = "no answer", 0, False
        while tries < policy.tries:
            tries += 1
            try:
                resp = self.client.get(f"/api/v1/devices/{self.device_id}/cards/{card_number}",
                                       timeout=policy.timeout_s)
            except httpx.HTTPError as exc:
                why = f"registry unreachable (offline): {type(exc).__name__}"
                continue
            if resp.status_code == 404:
                return fetched.UNKNOWN_AT_REGISTRY
            if resp.status_code != 200:
                why = f"registry answered {resp.status_code}"
                if resp.status_code < 500:
                    return why  # refused (rate limit, token, card number): trying again now changes nothing
                continue
            try:
                record = self._checked(resp.content, card_number)
                fetched.store_card(self.store, record)
            except fetched.StaleRecord:
                why = "the card changed while it was fetched"
                if not refetched:  # the feed moved on meanwhile: once more, whatever `tries` says
                    refetched, tries = True, tries - 1
                continue
            except (SyncError, CacheError) as exc:
                log.warning("fetched card refused: %s", exc)
                return f"fetched card refused: {exc}"
            log.info("fetched a card on demand: %d templates, held %s", len(record.templates), record.held)
            fetched.evict(self.store, policy.max_cards, policy.idle_days)
            return None
        if why.startswith("registry unreachable"):
            self._offline_until = time.monotonic() + policy.offline_s
        return why

    def _checked(self, content: bytes, card_number: str) -> CardRecord:
        try:
            record = CardRecord.model_validate_json(content)
        except ValidationError as exc:
            raise SyncError(f"malformed card record ({exc.error_count()} problems)") from exc
        if record.card_number != card_number:
            raise SyncError("the registry answered for another card")
        for t in record.templates:
            check_template(t, self.template_check)
        return record

    # -- background ----------------------------------------------------------------------------
    def notify(self, note: TemplatesChanged) -> None:
        """MQTT TemplatesChanged: pull now if the registry is ahead of us."""
        if note.version != self.store.feed_version():
            self._trigger.set()

    def sync_soon(self) -> None:
        """Pull now rather than at the next interval (e.g. a change is known to be on its way)."""
        self._trigger.set()
