"""SQLAlchemy 2 models of the registry. Import from here: `from server.models import CardHolder`."""

from fpverify.server.models.alerts import AlertNote
from fpverify.server.models.approvals import (
    ACCOUNT_ACTIONS,
    Approval,
    ApprovalAction,
    ApprovalStatus,
    ApprovalVote,
)
from fpverify.server.models.audit import AuditEntry, AuditHead
from fpverify.server.models.base import Base, UTCDateTime, utcnow
from fpverify.server.models.feed import Counter, FeedChange
from fpverify.server.models.holders import (
    CardHolder,
    Consent,
    Delegate,
    Enrollment,
    EnrollmentStatus,
    HolderStatus,
    Template,
    TemplateStatus,
)
from fpverify.server.models.results import Alert, AlertStatus, DeadLetter, VerificationRecord
from fpverify.server.models.sites import Device, Site
from fpverify.server.models.stays import InpatientStay
from fpverify.server.models.suspicion import SUSPICION_KINDS, SuspicionMark
from fpverify.server.models.users import ApiToken, LoginThrottle, Role, User

__all__ = [
    "ACCOUNT_ACTIONS", "Alert", "AlertNote", "AlertStatus", "ApiToken", "Approval", "ApprovalAction", "ApprovalStatus", "ApprovalVote",
    "AuditEntry", "AuditHead", "Base", "CardHolder", "Consent", "Counter", "Delegate", "Device",
    "DeadLetter", "Enrollment", "EnrollmentStatus", "FeedChange", "HolderStatus", "InpatientStay",
    "LoginThrottle", "Role", "Site", "SUSPICION_KINDS", "SuspicionMark", "Template", "TemplateStatus", "User", "UTCDateTime", "VerificationRecord", "utcnow",
]
