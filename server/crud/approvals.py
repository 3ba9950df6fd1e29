"""Four-eyes special operations. A supervisor requests (counting as the first approval); a second,
different supervisor approves and the operation executes in the same transaction. Duplicate holds
are requested by "system" and need two different supervisors."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fpverify.server import audit
from fpverify.server.crud import holders
from fpverify.server.crud.errors import Conflict, Denied, Invalid, NotFound
from fpverify.server.models import (
    Approval,
    ApprovalAction,
    ApprovalStatus,
    ApprovalVote,
    CardHolder,
    Enrollment,
    EnrollmentStatus,
    HolderStatus,
    Role,
    Template,
    User,
    utcnow,
)

REQUIRED_APPROVALS = 2


def _check_target(s: Session, action: str, target: str) -> None:
    if action == ApprovalAction.UNBLOCK_CARD:
        h = s.get(CardHolder, target)
        if h is None:
            raise NotFound("no such card holder")
        if h.status != HolderStatus.BLOCKED:
            raise Conflict("card is not blocked")
    elif action == ApprovalAction.DELETE_TEMPLATE:
        t = s.get(Template, target)
        if t is None:
            raise NotFound("no such template")
        if t.data is None:
            raise Conflict("template already revoked")
    elif action == ApprovalAction.OVERRIDE_DUPLICATE:
        e = s.get(Enrollment, target)
        if e is None:
            raise NotFound("no such enrollment")
        if e.status != EnrollmentStatus.PENDING_REVIEW:
            raise Conflict(f"enrollment is {e.status}")
    else:
        raise Invalid(f"action must be one of {', '.join(ApprovalAction)}")


def request(s: Session, user: User, action: str, target: str, reason: str) -> Approval:
    if user.role != Role.SUPERVISOR:
        raise Denied("only supervisors request special operations")
    _check_target(s, action, target)
    open_same = s.scalar(select(Approval).where(Approval.action == action, Approval.target == target,
                                                Approval.status == ApprovalStatus.PENDING))
    if open_same is not None:
        raise Conflict(f"approval {open_same.id} for this is already pending")
    a = Approval(action=action, target=target, reason=reason, requested_by=user.username,
                 status=ApprovalStatus.PENDING, requested_at=utcnow())
    s.add(a)
    s.flush()
    audit.record(s, user.username, "approval.request", "approval", a.id, None, a, note=action)
    _vote(s, a, user, "approve", None)
    return a


def _vote(s: Session, a: Approval, user: User, decision: str, comment: str | None) -> None:
    if s.scalar(select(ApprovalVote).where(ApprovalVote.approval_id == a.id, ApprovalVote.user_id == user.id)):
        raise Conflict("you have already approved this; a second, different supervisor must approve")
    v = ApprovalVote(approval_id=a.id, user_id=user.id, decision=decision, comment=comment, at=utcnow())
    s.add(v)
    s.flush()
    audit.record(s, user.username, f"approval.{decision}", "approval", a.id, None, v)


def get(s: Session, approval_id: int) -> Approval:
    a = s.get(Approval, approval_id)
    if a is None:
        raise NotFound("no such approval")
    return a


def list_approvals(s: Session, status: str | None = None) -> list[Approval]:
    q = select(Approval).order_by(Approval.id.desc())
    if status:
        q = q.where(Approval.status == status)
    return list(s.scalars(q.limit(500)))


def approvers(s: Session, approval_id: int) -> list[int]:
    return list(s.scalars(select(ApprovalVote.user_id).where(ApprovalVote.approval_id == approval_id,
                                                             ApprovalVote.decision == "approve")))


def approve(s: Session, user: User, approval_id: int, comment: str | None = None) -> Approval:
    if user.role != Role.SUPERVISOR:
        raise Denied("only supervisors approve special operations")
    a = get(s, approval_id)
    if a.status != ApprovalStatus.PENDING:
        raise Conflict(f"approval is {a.status}")
    _vote(s, a, user, "approve", comment)
    if len(set(approvers(s, a.id))) >= REQUIRED_APPROVALS:
        _execute(s, user.username, a)
    return a


def reject(s: Session, user: User, approval_id: int, comment: str | None = None) -> Approval:
    if user.role != Role.SUPERVISOR:
        raise Denied("only supervisors decide special operations")
    a = get(s, approval_id)
    if a.status != ApprovalStatus.PENDING:
        raise Conflict(f"approval is {a.status}")
    _vote(s, a, user, "reject", comment)
    before = audit.snapshot(a)
    a.status = ApprovalStatus.REJECTED
    a.decided_at = utcnow()
    audit.record(s, user.username, "approval.rejected", "approval", a.id, before, a)
    if a.action == ApprovalAction.OVERRIDE_DUPLICATE:
        holders.reject_enrollment(s, user.username, a.target)
    return a


def _execute(s: Session, actor: str, a: Approval) -> None:
    _check_target(s, a.action, a.target)  # state may have changed since the request
    if a.action == ApprovalAction.UNBLOCK_CARD:
        holders.set_status(s, actor, a.target, HolderStatus.ACTIVE, note=f"approval {a.id}")
    elif a.action == ApprovalAction.DELETE_TEMPLATE:
        holders.revoke_template(s, actor, a.target, f"deleted by approval {a.id}")
    elif a.action == ApprovalAction.OVERRIDE_DUPLICATE:
        holders.activate_enrollment(s, actor, a.target)
    before = audit.snapshot(a)
    a.status = ApprovalStatus.EXECUTED
    a.decided_at = utcnow()
    audit.record(s, actor, "approval.executed", "approval", a.id, before, a, note=a.action)
