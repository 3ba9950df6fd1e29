"""Sites and stations: registration, feed tokens, token checks, MQTT presence.

A device's token reads its site's template feed (card numbers and templates): personal data. So a
token is issued only by an approved `device_token` special operation (a sysadmin asks, a supervisor
approves and receives it) or on the server's console; a device registered through the API has none."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fpverify.server import audit
from fpverify.server.core.security import new_token, token_digest
from fpverify.server.crud.errors import Conflict, Invalid, NotFound
from fpverify.server.models import Device, Site, utcnow

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # same alphabet as edge.wire.DeviceId


def create_site(s: Session, actor: str, site_id: str, name: str) -> Site:
    if not ID_RE.match(site_id):
        raise Invalid("site id: letters, digits, _ . - (max 64)")
    if s.get(Site, site_id) is not None:
        raise Conflict(f"site {site_id!r} exists")
    site = Site(id=site_id, name=name, created_at=utcnow())
    s.add(site)
    s.flush()
    audit.record(s, actor, "site.create", "site", site_id, None, site)
    return site


def list_sites(s: Session) -> list[Site]:
    return list(s.scalars(select(Site).order_by(Site.id)))


def get_device(s: Session, device_id: str) -> Device:
    dev = s.get(Device, device_id)
    if dev is None:
        raise NotFound("no such device")
    return dev


def list_devices(s: Session, site_id: str | None = None) -> list[Device]:
    q = select(Device).order_by(Device.id)
    if site_id:
        q = q.where(Device.site_id == site_id)
    return list(s.scalars(q))


def register_device(s: Session, actor: str, site_id: str, device_id: str, name: str | None = None,
                    create_site_if_missing: bool = False) -> Device:
    """Register a station WITHOUT feed access: its token hash is that of a token nobody holds. The
    feed (card numbers and templates) opens only when `rotate_token` issues a token, through an
    approved `device_token` request (crud.approvals)."""
    return _add(s, actor, site_id, device_id, name, create_site_if_missing, new_token())


def create_device(s: Session, actor: str, site_id: str, device_id: str, name: str | None = None,
                  create_site_if_missing: bool = False) -> tuple[Device, str]:
    """Register a station with its token; returns (device, token), shown once and stored hashed.
    Only for the server's console (the root of trust, like `create-user`): the API registers with
    `register_device` and files a `device_token` approval."""
    token = new_token()
    return _add(s, actor, site_id, device_id, name, create_site_if_missing, token), token


def _add(s: Session, actor: str, site_id: str, device_id: str, name: str | None, create_site_if_missing: bool,
         token: str) -> Device:
    if not ID_RE.match(device_id):
        raise Invalid("device id: letters, digits, _ . - (max 64)")
    if s.get(Site, site_id) is None:
        if not create_site_if_missing:
            raise NotFound(f"no site {site_id!r}")
        create_site(s, actor, site_id, site_id)
    if s.get(Device, device_id) is not None:
        raise Conflict(f"device {device_id!r} exists")
    dev = Device(id=device_id, site_id=site_id, name=name, token_hash=token_digest(token), disabled=False,
                 online=False, created_at=utcnow())
    s.add(dev)
    s.flush()
    audit.record(s, actor, "device.create", "device", device_id, None, dev)
    return dev


def check_token_target(s: Session, device_id: str) -> Device:
    """A device that may be given a feed token (checked at the request and again at execution)."""
    dev = get_device(s, device_id)
    if dev.retired_at is not None:
        raise Conflict(f"device {device_id!r} is retired; register a new device instead")
    return dev


def rotate_token(s: Session, actor: str, device_id: str) -> tuple[Device, str]:
    """Issue a new feed token (the old one stops working); returns (device, token), shown once and
    stored hashed. Callers: the executed `device_token` approval and the console."""
    dev = check_token_target(s, device_id)
    before = audit.snapshot(dev)
    token = new_token()
    dev.token_hash = token_digest(token)
    audit.record(s, actor, "device.rotate_token", "device", device_id, before, dev)
    return dev, token


def set_disabled(s: Session, actor: str, device_id: str, disabled: bool) -> Device:
    """Disable (temporarily: a station under repair) or enable again. The ingest refuses a disabled
    device's results from the commit on."""
    dev = get_device(s, device_id)
    if not disabled and dev.retired_at is not None:
        raise Conflict(f"device {device_id!r} is retired; register a new device instead")
    before = audit.snapshot(dev)
    dev.disabled = disabled
    audit.record(s, actor, "device.disable" if disabled else "device.enable", "device", device_id, before, dev)
    return dev


def retire_device(s: Session, actor: str, device_id: str) -> Device:
    """Take a station out of service for good: disabled, never enabled again, its token ended (the
    API route also revokes its certificates). The ingest refuses its results from the commit on."""
    dev = get_device(s, device_id)
    if dev.retired_at is not None:
        raise Conflict(f"device {device_id!r} is already retired")
    before = audit.snapshot(dev)
    dev.disabled = True
    dev.retired_at = utcnow()
    dev.token_hash = token_digest(new_token())  # nobody holds this one
    audit.record(s, actor, "device.retire", "device", device_id, before, dev)
    return dev


def device_for_token(s: Session, token: str) -> Device | None:
    dev = s.scalar(select(Device).where(Device.token_hash == token_digest(token)))
    if dev is None or dev.disabled:
        return None
    return dev


def record_presence(s: Session, device_id: str, state: str, at: datetime | None, cache_version: int | None,
                    software_version: str | None) -> Device | None:
    """Apply a DeviceStatus from MQTT. Presence is telemetry, not a data change: not audited."""
    dev = s.get(Device, device_id)
    if dev is None:
        return None
    dev.online = state == "online"
    dev.last_seen = max(filter(None, [dev.last_seen, at or utcnow()]))
    if cache_version is not None:
        dev.cache_version = cache_version
    if software_version is not None:
        dev.software_version = software_version
    return dev
