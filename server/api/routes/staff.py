"""Clerks' sign-in at the stations (staff credentials) and the per-device staff feed.

A sysadmin files a clerk's credential (finger templates and PIN, for one site); a supervisor must
approve the `staff_credential` approval before any station learns it (server/crud/staff.py says
why). Revoking is direct. Stations read their site's clerks with their device token; the list
never includes card holders, and patients' templates never include a clerk's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from fpverify.edge import wire
from fpverify.server import schemas
from fpverify.server.api.deps import DeviceDep, IntId, SessionDep, Sysadmin, require
from fpverify.server.api.routes.approvals import out
from fpverify.server.crud import approvals
from fpverify.server.crud import staff as crud
from fpverify.server.models import ApprovalAction, Role, User

router = APIRouter(tags=["staff"])


@router.get("/staff", response_model=list[schemas.StaffCredentialOut])
def list_staff(user: Annotated[User, Depends(require(Role.SYSADMIN, Role.AUDITOR))], s: SessionDep,
               site_id: str | None = Query(default=None, max_length=64)):
    """Credentials with their state and fingers (never templates or PIN hashes)."""
    return crud.list_credentials(s, site_id)


@router.post("/staff/{user_id}/credentials", response_model=schemas.StaffEnrollOut, status_code=202,
             responses={202: {"description": "filed as a special operation; active when a supervisor approves"}})
def enroll(user_id: IntId, body: schemas.StaffEnrollIn, user: Sysadmin, s: SessionDep, request: Request):
    """Enroll a clerk's sign-in (role operator or enroller) for the stations of `site_id`."""
    c = crud.file_enrollment(s, user, user_id, body.site_id, body.fingers, body.pin,
                             request.app.state.template_validator)
    a = approvals.request(s, user, ApprovalAction.STAFF_CREDENTIAL, c.id, body.reason)
    s.commit()
    return schemas.StaffEnrollOut(credential_id=c.id, approval=out(s, a))


@router.post("/staff/{user_id}/revoke")
def revoke(user_id: IntId, user: Sysadmin, s: SessionDep) -> dict:
    """End the account's sign-in at every station (direct: it takes power away)."""
    ended = crud.revoke(s, user.username, user_id)
    s.commit()
    return {"revoked": [c.id for c in ended]}


@router.get("/devices/{device_id}/staff", response_model=wire.StaffFeed, tags=["stations"])
def staff_feed(device_id: str, device: DeviceDep, s: SessionDep):
    """The clerks of this device's site (authenticated by the device token)."""
    if device.id != device_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a device may read only its own staff list")
    return crud.build_feed(s, device.site_id)
