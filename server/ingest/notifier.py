"""The change notifier: after a commit that appended template-feed changes (server/ingest/feed.py),
publish `TemplatesChanged(version)` retained on every enabled device's templates topic, so a
station pulls its feed at once, and one connecting later finds the current version waiting.

It publishes through the ingest consumer's MQTT connection (any `publish(topic, payload, qos,
retain)` will do); `Database` calls `notify(version)` from its after_commit hook, and the consumer
calls `notify()` after each (re)connection to heal notifications missed while away.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from fpverify.edge import wire
from fpverify.server.ingest.feed import current_version
from fpverify.server.models import Device

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes, int, bool], object]  # (topic, payload, qos, retain)


class FeedNotifier:
    """Publishes TemplatesChanged(version) retained on every enabled device's templates topic."""

    def __init__(self, sessionmaker, publish: Publish):
        self.sessionmaker = sessionmaker
        self.publish = publish
        self.last_published: int | None = None

    def notify(self, version: int | None = None) -> int:
        with self.sessionmaker() as s:
            if version is None:
                version = current_version(s)
            device_ids = list(s.scalars(select(Device.id).where(Device.disabled.is_(False))))
        payload = wire.TemplatesChanged(version=version).model_dump_json().encode("utf-8")
        for device_id in device_ids:
            try:
                self.publish(wire.Topics(device_id).templates_notify, payload, 1, True)
            except Exception:  # a broker hiccup must not fail the API request that committed
                log.exception("publishing TemplatesChanged to %s failed", device_id)
        self.last_published = version
        return len(device_ids)
