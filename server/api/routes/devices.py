"""Sites, stations, the per-site template feed and the on-demand card fetch (device token).

The feed carries card numbers and templates, so no sysadmin is ever handed a working token: a
device registered here has none, and every token (the first or a re-issue) is a `device_token`
special operation that a supervisor approves and receives (crud/approvals.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi import Path as PathParam

from fpverify.edge import wire
from fpverify.server import audit, schemas
from fpverify.server.api.deps import Anyone, DeviceDep, SessionDep, Sysadmin, Version
from fpverify.server.api.routes.approvals import out
from fpverify.server.crud import approvals, sites
from fpverify.server.crud import devices as crud
from fpverify.server.crud.errors import NotFound
from fpverify.server.ingest import feed
from fpverify.server.models import ApprovalAction

log = logging.getLogger(__name__)
router = APIRouter(tags=["sites and devices"])


@router.get("/sites", response_model=list[schemas.SiteOut])
def list_sites(user: Anyone, s: SessionDep):
    return crud.list_sites(s)


@router.post("/sites", response_model=schemas.SiteOut, status_code=201)
def create_site(body: schemas.SiteIn, user: Sysadmin, s: SessionDep):
    site = crud.create_site(s, user.username, body.id, body.name)
    s.commit()
    return site


@router.get("/devices", response_model=list[schemas.DeviceOut])
def list_devices(user: Anyone, s: SessionDep, site_id: str | None = Query(default=None, max_length=64)):
    return crud.list_devices(s, site_id)


@router.post("/devices", response_model=schemas.DeviceRegistered, status_code=201)
def create_device(body: schemas.DeviceIn, user: Sysadmin, s: SessionDep):
    """Register a station, without access to its feed: the answer carries the `device_token`
    approval this files. A supervisor approves it and receives the token, once, to install."""
    dev = crud.register_device(s, user.username, body.site_id, body.device_id, body.name)
    a = approvals.request(s, user, ApprovalAction.DEVICE_TOKEN, dev.id, body.reason)
    s.commit()
    return schemas.DeviceRegistered(**schemas.DeviceOut.model_validate(dev).model_dump(), approval=out(s, a))


@router.post("/devices/{device_id}/token", response_model=schemas.ApprovalOut, status_code=202,
             responses={202: {"description": "filed as a special operation; executes when a supervisor approves"}})
def rotate_token(device_id: str, body: schemas.ReasonIn, user: Sysadmin, s: SessionDep):
    """Request a new token for the device (station reinstalled, token lost). The current one keeps
    working until a supervisor approves; the approver receives the new one. To stop a leaked token
    at once, disable the device (direct) and enable it once the new token is installed."""
    a = approvals.request(s, user, ApprovalAction.DEVICE_TOKEN, device_id, body.reason)
    s.commit()
    return out(s, a)


@router.post("/devices/{device_id}/disable", response_model=schemas.DeviceOut)
def disable(device_id: str, user: Sysadmin, s: SessionDep):
    dev = crud.set_disabled(s, user.username, device_id, True)
    s.commit()
    return dev


@router.post("/devices/{device_id}/enable", response_model=schemas.DeviceOut)
def enable(device_id: str, user: Sysadmin, s: SessionDep):
    dev = crud.set_disabled(s, user.username, device_id, False)
    s.commit()
    return dev


@router.post("/devices/{device_id}/retire", response_model=schemas.DeviceOut)
def retire(device_id: str, user: Sysadmin, s: SessionDep, request: Request):
    """Out of service for good (lost, stolen, decommissioned): results refused from this commit on,
    token ended, and with a CA folder its certificates revoked (`cessation_of_operation`), so the
    broker refuses it at its next CRL reload. Not undone: register a new device."""
    dev = crud.retire_device(s, user.username, device_id)
    s.commit()
    ca_dir = request.app.state.settings.ca_dir
    if ca_dir is not None:
        from fpverify.server.trust.pki import CertificateAuthority, PKIError

        try:
            CertificateAuthority(ca_dir).revoke_device(device_id, "cessation_of_operation")
        except PKIError as exc:  # no valid certificate left: nothing to revoke
            log.info("retiring %s: %s", device_id, exc)
    return dev


@router.get("/devices/{device_id}/templates", response_model=wire.TemplateFeed, tags=["stations"])
def template_feed(device_id: str, device: DeviceDep, s: SessionDep, request: Request,
                  since: Version = 0, limit: int | None = Query(default=None, ge=1, le=10000)):
    """Changes after version `since` for this device's site (authenticated by the device token)."""
    if device.id != device_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a device may read only its own feed")
    settings = request.app.state.settings
    if sites.expire(s, settings.site_assignment_days, site_id=device.site_id):
        s.commit()  # the ends are committed (and versioned) before any station is shown them
    lim = min(limit or settings.feed_page_limit, 10000)
    page = feed.build_feed(s, device, since, lim)
    feed.note_pull(device, since)
    s.commit()
    return page


CardPath = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9-]{4,32}$", description="card number")]


class FetchLimiter:
    """At most `per_minute` on-demand fetches a device in any 60 s, in this registry process."""

    def __init__(self) -> None:
        self.seen: dict[str, deque] = {}
        self.lock = threading.Lock()

    def allow(self, device_id: str, per_minute: int) -> bool:
        now = time.monotonic()
        with self.lock:
            q = self.seen.setdefault(device_id, deque())
            while q and q[0] <= now - 60:
                q.popleft()
            if len(q) >= per_minute:
                return False
            q.append(now)
            return True


_LIMITER_LOCK = threading.Lock()


def _limiter(request: Request) -> FetchLimiter:
    with _LIMITER_LOCK:
        lim = getattr(request.app.state, "card_fetch_limiter", None)
        if lim is None:
            lim = request.app.state.card_fetch_limiter = FetchLimiter()
    return lim


@router.get("/devices/{device_id}/cards/{card_number}", response_model=wire.CardRecord, tags=["stations"],
            responses={404: {"description": "no such card holder"}, 429: {"description": "too many fetches"}})
def fetch_card(device_id: str, card_number: CardPath, device: DeviceDep, s: SessionDep, request: Request):
    """One card the station's cache lacks (issue 18): its status, active templates and delegates,
    as of the feed version given. The holder is assigned to the device's site (`fetched`), so later
    changes reach it through the site's feed. Audited (device, card); rate-limited per device. The
    answer is not signed: HTTPS to the registry (its CA in `registry.ca_file`) and the device token
    authenticate it, as for the feed."""
    if device.id != device_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a device may fetch only for itself")
    actor = f"device:{device.id}"
    if not _limiter(request).allow(device.id, request.app.state.settings.card_fetch_per_minute):
        audit.record(s, actor, "card.fetch_refused", "card_holder", card_number, note="rate limit")
        s.commit()
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many card fetches; try again in a minute",
                            headers={"Retry-After": "60"})
    try:
        record = sites.fetch_card(s, device, card_number)
    except NotFound:
        s.rollback()
        audit.record(s, actor, "card.fetch", "card_holder", card_number, note="unknown card")
        s.commit()
        raise
    s.commit()
    return record
