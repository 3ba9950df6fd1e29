"""Template sync: pull the registry's incremental feed (adds, revocations, card status) over HTTPS.

Runs on a TemplatesChanged MQTT notification and every `sync_interval_s`. Each feed page is checked
whole before anything is applied (versions in order and after ours, every template parseable by
the matcher, delegates well formed); a malformed page is rejected with a SyncError naming the
problem and the cache stays exactly as it was. Pages apply atomically, so a failure mid-way leaves
the cache at the last good version, from where the next sync resumes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import httpx
from pydantic import ValidationError

from fpverify.edge.cache import CacheError, Store
from fpverify.edge.config import RegistrySection
from fpverify.edge.wire import HolderRole, TemplateAdd, TemplateFeed, TemplatesChanged

log = logging.getLogger("fpverify.edge.sync")


class SyncError(Exception):
    """The registry could not be reached or sent something we will not apply."""


def matcher_template_check(raw: bytes) -> None:
    """Default check: the matcher must be able to parse the template (ValueError otherwise)."""
    from fpverify import matcher
    matcher.Template.from_bytes(raw)


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
            if (ch.role == HolderRole.DELEGATE) != (ch.delegate_id is not None):
                raise SyncError(f"template {ch.template_id}: delegate_id must be set exactly for delegates")
            if template_check is not None:
                try:
                    template_check(ch.template)
                except (ValueError, TypeError) as exc:
                    raise SyncError(f"template {ch.template_id} for card {ch.card_number} is not a valid "
                                    f"template: {exc}") from exc


class TemplateSync:
    def __init__(self, cfg: RegistrySection, device_id: str, store: Store, token: str,
                 template_check: Callable[[bytes], None] | None = matcher_template_check,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not cfg.url:
            raise ValueError("registry.url is not configured")
        self.cfg = cfg
        self.device_id = device_id
        self.store = store
        self.template_check = template_check
        self.last_error: str | None = None
        self.client = httpx.Client(
            base_url=cfg.url, timeout=cfg.timeout_s, transport=transport,
            verify=str(cfg.ca_file) if cfg.ca_file else True,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        self._trigger = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def fetch(self, since: int) -> TemplateFeed:
        try:
            resp = self.client.get(f"/api/v1/devices/{self.device_id}/templates",
                                   params={"since": since, "limit": self.cfg.page_limit})
        except httpx.HTTPError as exc:
            raise SyncError(f"registry unreachable at {self.cfg.url}: {exc}") from exc
        if resp.status_code != 200:
            raise SyncError(f"registry answered {resp.status_code} for the template feed: {resp.text[:200]}")
        try:
            return TemplateFeed.model_validate_json(resp.content)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise SyncError(f"malformed template feed ({exc.error_count()} problems; first at {where}: "
                            f"{first['msg']}); nothing applied") from exc

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
        return applied

    # -- background ----------------------------------------------------------------------------
    def notify(self, note: TemplatesChanged) -> None:
        """MQTT TemplatesChanged: pull now if the registry is ahead of us."""
        if note.version != self.store.feed_version():
            self._trigger.set()

    def sync_soon(self) -> None:
        """Pull now rather than at the next interval (e.g. a change is known to be on its way)."""
        self._trigger.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="template-sync", daemon=True)
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
                log.warning("template sync failed (cache unchanged): %s", exc)
            except Exception as exc:  # keep the thread alive; the desk still works from the cache
                self.last_error = str(exc)
                log.exception("template sync crashed (cache unchanged)")
            self._trigger.wait(self.cfg.sync_interval_s)
            self._trigger.clear()
