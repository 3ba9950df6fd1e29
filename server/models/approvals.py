"""Four-eyes approvals for special operations: on cards and templates (requested by supervisors)
and on accounts and device feed tokens (requested by sysadmins); a supervisor always gives the
second approval."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fpverify.server.models.base import Base, UTCDateTime, utcnow


class ApprovalAction(enum.StrEnum):
    UNBLOCK_CARD = "unblock_card"  # target: card number
    DELETE_TEMPLATE = "delete_template"  # target: template id
    OVERRIDE_DUPLICATE = "override_duplicate"  # target: enrollment id
    CREATE_ACCOUNT = "create_account"  # target: new user name, param: role
    SET_ROLE = "set_role"  # target: user id, param: role
    RESET_PASSWORD = "reset_password"  # target: user id
    UNFREEZE_ACCOUNT = "unfreeze_account"  # target: user id
    DEVICE_TOKEN = "device_token"  # target: device id; its feed token reads card numbers and templates
    STAFF_CREDENTIAL = "staff_credential"  # target: staff credential id (a clerk's station sign-in)


ACCOUNT_ACTIONS = frozenset({ApprovalAction.CREATE_ACCOUNT, ApprovalAction.SET_ROLE, ApprovalAction.RESET_PASSWORD,
                             ApprovalAction.UNFREEZE_ACCOUNT})


class ApprovalStatus(enum.StrEnum):
    PENDING = "pending"
    EXECUTED = "executed"
    REJECTED = "rejected"


class Approval(Base):
    """Executes once two different people have approved (the requester counts as one)."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(64))
    param: Mapped[str | None] = mapped_column(String(64), nullable=True)  # e.g. the role to grant
    reason: Mapped[str] = mapped_column(String(1000))
    requested_by: Mapped[str] = mapped_column(String(64))  # username, or "system" for duplicate holds
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=ApprovalStatus.PENDING, index=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApprovalVote(Base):
    __tablename__ = "approval_votes"
    __table_args__ = (UniqueConstraint("approval_id", "user_id", name="uq_approval_votes_approval_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    approval_id: Mapped[int] = mapped_column(ForeignKey("approvals.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(String(16))  # approve | reject
    comment: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
