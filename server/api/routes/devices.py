"""Sites, stations, and the per-device template feed (device token)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request, status

from fpverify.edge import wire
from fpverify.server import schemas
from fpverify.server.api.deps import Anyone, DeviceDep, SessionDep, Sysadmin, Version
from fpverify.server.crud import devices as crud
from fpverify.server.ingest import feed

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


@router.post("/devices", response_model=schemas.DeviceWithToken, status_code=201)
def create_device(body: schemas.DeviceIn, user: Sysadmin, s: SessionDep):
    """Register a station. The token in the answer is shown once."""
    dev, token = crud.create_device(s, user.username, body.site_id, body.device_id, body.name)
    s.commit()
    return schemas.DeviceWithToken(**schemas.DeviceOut.model_validate(dev).model_dump(), token=token)


@router.post("/devices/{device_id}/token", response_model=schemas.DeviceWithToken)
def rotate_token(device_id: str, user: Sysadmin, s: SessionDep):
    dev, token = crud.rotate_token(s, user.username, device_id)
    s.commit()
    return schemas.DeviceWithToken(**schemas.DeviceOut.model_validate(dev).model_dump(), token=token)


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


@router.get("/devices/{device_id}/templates", response_model=wire.TemplateFeed, tags=["stations"])
def template_feed(device_id: str, device: DeviceDep, s: SessionDep, request: Request,
                  since: Version = 0, limit: int | None = Query(default=None, ge=1, le=10000)):
    """Changes after version `since` for this device's site (authenticated by the device token)."""
    if device.id != device_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a device may read only its own feed")
    lim = min(limit or request.app.state.settings.feed_page_limit, 10000)
    return feed.build_feed(s, device, since, lim)
