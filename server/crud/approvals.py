"""Four-eyes special operations (双人复核). The requester counts as the first approval; a second
person approves and the operation executes in the same transaction.

- Cards and templates (unblock, delete a template, override a duplicate hold): requested and
  approved by supervisors. Duplicate holds are requested by "system" and need two supervisors.
- Accounts (create one, give another role, reset a password, unfreeze): requested by a sysadmin,
  approved by a supervisor. Every role but sysadmin reaches personal data, so no account gains
  power on one person's word. A new account or a reset gets a one-time password that only the
  approver receives (to hand over in person); the user must replace it at the first login.
- Device feed tokens (`device_token`: a newly registered device's first token, or a re-issue): the
  token reads the device's template feed (card numbers and templates), so a sysadmin asks and a
  supervisor approves; only the approver receives the token, once, to install on the station.
- Staff credentials (`staff_credential`: a clerk's finger templates and PIN for signing in at the
  station, server/crud/staff.py): a sign-in is a login that signs every result with the clerk's
  name, so a sysadmin files it and a supervisor approves it (who should see the clerk in person).
- Nobody approves their own request, a change to their own account, or a request of the person
  who created their account. Nobody changes their own role.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fpverify.server import audit
from fpverify.server.core.security import one_time_password
from fpverify.server.crud import devices, holders, staff, users
from fpverify.server.crud.errors import Conflict, Denied, Invalid, NotFound
from fpverify.server.models import (
    ACCOUNT_ACTIONS,
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
SYSADMIN_ACTIONS = ACCOUNT_ACTIONS | {ApprovalAction.DEVICE_TOKEN, ApprovalAction.STAFF_CREDENTIAL}  # what sysadmins request (and may list)


def _check_target(s: Session, action: str, target: str, param: str | None, requester: str) -> None:
    if action in ACCOUNT_ACTIONS:
        _check_account_target(s, action, target, param, requester)
    elif action == ApprovalAction.DEVICE_TOKEN:
        devices.check_token_target(s, target)
    elif action == ApprovalAction.STAFF_CREDENTIAL:
        staff.check_target(s, target)
    elif action == ApprovalAction.UNBLOCK_CARD:
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


def _target_user(s: Session, target: str) -> User:
    if not target.isdigit() or len(target) > 10:
        raise Invalid("target: the user's id")
    return users.get_user(s, int(target))


def _check_account_target(s: Session, action: str, target: str, param: str | None, requester: str) -> None:
    if action == ApprovalAction.CREATE_ACCOUNT:
        users.check_new_account(s, target, param)
        return
    user = _target_user(s, target)
    if user.username == requester:
        raise Denied("nobody changes their own role, password reset or freeze; ask a colleague")
    if action == ApprovalAction.SET_ROLE:
        if param not in set(Role):
            raise Invalid(f"role must be one of {', '.join(Role)}")
        if user.role == param:
            raise Conflict(f"user already has role {param}")
    elif action == ApprovalAction.UNFREEZE_ACCOUNT and not user.frozen:
        raise Conflict("account is not frozen")


def _requester_role(action: str) -> Role:
    return Role.SYSADMIN if action in SYSADMIN_ACTIONS else Role.SUPERVISOR


def request(s: Session, user: User, action: str, target: str, reason: str, param: str | None = None) -> Approval:
    if action not in set(ApprovalAction):
        raise Invalid(f"action must be one of {', '.join(ApprovalAction)}")
    if user.role != _requester_role(action):
        raise Denied("account changes and device tokens are requested by sysadmins"
                     if action in SYSADMIN_ACTIONS else
                     "only supervisors request special operations on cards and templates")
    _check_target(s, action, target, param, user.username)
    open_same = s.scalar(select(Approval).where(Approval.action == action, Approval.target == target,
                                                Approval.status == ApprovalStatus.PENDING))
    if open_same is not None:
        raise Conflict(f"approval {open_same.id} for this is already pending")
    a = Approval(action=action, target=target, param=param, reason=reason, requested_by=user.username,
                 status=ApprovalStatus.PENDING, requested_at=utcnow())
    s.add(a)
    s.flush()
    audit.record(s, user.username, "approval.request", "approval", a.id, None, a, note=action)
    _vote(s, a, user, "approve", None)
    return a


def _vote(s: Session, a: Approval, user: User, decision: str, comment: str | None) -> None:
    if s.scalar(select(ApprovalVote).where(ApprovalVote.approval_id == a.id, ApprovalVote.user_id == user.id)):
        raise Conflict("you have already approved this; a second, different person must approve")
    v = ApprovalVote(approval_id=a.id, user_id=user.id, decision=decision, comment=comment, at=utcnow())
    s.add(v)
    s.flush()
    audit.record(s, user.username, f"approval.{decision}", "approval", a.id, None, v)


def get(s: Session, approval_id: int) -> Approval:
    a = s.get(Approval, approval_id)
    if a is None:
        raise NotFound("no such approval")
    return a


def list_approvals(s: Session, status: str | None = None, accounts_only: bool = False) -> list[Approval]:
    """`accounts_only`: what a sysadmin may see, their own kinds (card numbers of the others are
    personal data)."""
    q = select(Approval).order_by(Approval.id.desc())
    if status:
        q = q.where(Approval.status == status)
    if accounts_only:
        q = q.where(Approval.action.in_(SYSADMIN_ACTIONS))
    return list(s.scalars(q.limit(500)))


def approvers(s: Session, approval_id: int) -> list[int]:
    return list(s.scalars(select(ApprovalVote.user_id).where(ApprovalVote.approval_id == approval_id,
                                                             ApprovalVote.decision == "approve")))


def _check_decider(s: Session, user: User, a: Approval) -> None:
    if user.role != Role.SUPERVISOR:
        raise Denied("only supervisors decide special operations")
    if a.status != ApprovalStatus.PENDING:
        raise Conflict(f"approval is {a.status}")
    if a.requested_by == user.username:
        raise Conflict("you requested this; a second, different person must decide")
    if user.created_by == a.requested_by:
        raise Denied("an account cannot decide requests of the person who created it")
    if a.action in ACCOUNT_ACTIONS and a.action != ApprovalAction.CREATE_ACCOUNT and a.target == str(user.id):
        raise Denied("you cannot decide a change to your own account")


def approve(s: Session, user: User, approval_id: int, comment: str | None = None) -> tuple[Approval, str | None]:
    """Approve; returns the approval and, when it executed a new account or a password reset, the
    one-time password, or for `device_token` the device's token (shown to this approver only,
    never stored in clear)."""
    a = get(s, approval_id)
    _check_decider(s, user, a)
    _vote(s, a, user, "approve", comment)
    secret = None
    if len(set(approvers(s, a.id))) >= REQUIRED_APPROVALS:
        secret = _execute(s, user.username, a)
    return a, secret


def reject(s: Session, user: User, approval_id: int, comment: str | None = None) -> Approval:
    a = get(s, approval_id)
    _check_decider(s, user, a)
    _vote(s, a, user, "reject", comment)
    before = audit.snapshot(a)
    a.status = ApprovalStatus.REJECTED
    a.decided_at = utcnow()
    audit.record(s, user.username, "approval.rejected", "approval", a.id, before, a)
    if a.action == ApprovalAction.OVERRIDE_DUPLICATE:
        holders.reject_enrollment(s, user.username, a.target)
    elif a.action == ApprovalAction.STAFF_CREDENTIAL:
        staff.reject(s, user.username, a.target)
    return a


def _execute(s: Session, actor: str, a: Approval) -> str | None:
    _check_target(s, a.action, a.target, a.param, a.requested_by)  # state may have changed since the request
    secret = None
    if a.action == ApprovalAction.CREATE_ACCOUNT:
        secret = one_time_password()
        users.create_user(s, actor, a.target, secret, a.param, created_by=a.requested_by, one_time=True)
    elif a.action == ApprovalAction.SET_ROLE:
        users.change_role(s, actor, int(a.target), a.param)
    elif a.action == ApprovalAction.RESET_PASSWORD:
        secret = one_time_password()
        users.reset_password(s, actor, int(a.target), secret)
    elif a.action == ApprovalAction.UNFREEZE_ACCOUNT:
        users.set_frozen(s, actor, int(a.target), False)
    elif a.action == ApprovalAction.DEVICE_TOKEN:
        _, secret = devices.rotate_token(s, actor, a.target)
    elif a.action == ApprovalAction.STAFF_CREDENTIAL:
        staff.activate(s, actor, a.target)
    elif a.action == ApprovalAction.UNBLOCK_CARD:
        holders.set_status(s, actor, a.target, HolderStatus.ACTIVE, note=f"approval {a.id}")
    elif a.action == ApprovalAction.DELETE_TEMPLATE:
        holders.revoke_template(s, actor, a.target, f"deleted by approval {a.id}")
    elif a.action == ApprovalAction.OVERRIDE_DUPLICATE:
        holders.activate_enrollment(s, actor, a.target)
    before = audit.snapshot(a)
    a.status = ApprovalStatus.EXECUTED
    a.decided_at = utcnow()
    audit.record(s, actor, "approval.executed", "approval", a.id, before, a, note=a.action)
    return secret
