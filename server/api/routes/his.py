"""The hospital information system's (HIS) view of the registry: one verification result by its id,
so a billing system can check that a claim's visit was verified.

The caller is a service account of role `his`, created like every account through a four-eyes
approval (sysadmin asks, supervisor approves, the one-time password goes to the approver). It reads
this route only: no list, no search by card, no card holder, no template; the answer holds what the
station gave the HIS (outcome, card, device, site, time, purpose, operator) and the signature status.

Every read is written to the audit log, found or not: a billing system reads personal data of
card holders, and a stolen HIS token probing ids shows there as a run of misses.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from fpverify.server import audit, schemas
from fpverify.server.api.deps import SessionDep, require
from fpverify.server.crud import results as crud
from fpverify.server.crud.errors import NotFound
from fpverify.server.models import Role, User

router = APIRouter(tags=["hospital system"])
HisClient = Annotated[User, Depends(require(Role.HIS))]


@router.get("/his/results/{result_id}", response_model=schemas.HisResultOut,
            responses={404: {"description": "no such result"}})
def his_result(result_id: uuid.UUID, user: HisClient, s: SessionDep, request: Request):
    """The result the station reported to the HIS (`result_id` of its answer), as the registry stored it."""
    try:
        r = crud.get_result(s, result_id)
    except NotFound:
        audit.record(s, user.username, "his.result.read", "verification_result", result_id, note="not found")
        s.commit()
        raise
    audit.record(s, user.username, "his.result.read", "verification_result", result_id)
    s.commit()
    checked = request.app.state.settings.ca_dir is not None
    return schemas.HisResultOut(**{n: getattr(r, n) for n in schemas.HIS_RESULT_FIELDS},
                                signature=crud.signature_status(r, checked))
