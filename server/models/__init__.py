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
from fpverify.server.models.results import Alert, AlertStatus, DeadLetter, SignedCounter, VerificationRecord
from fpverify.server.models.sites import AssignmentReason, Device, HolderSite, Site
from fpverify.server.models.staff import CredentialStatus, StaffCredential, StaffTemplate
from fpverify.server.models.stays import InpatientStay
from fpverify.server.models.suspicion import SUSPICION_KINDS, SuspicionMark
from fpverify.server.models.users import ApiToken, LoginThrottle, Role, User

__all__ = [
    "ACCOUNT_ACTIONS", "Alert", "AlertNote", "AlertStatus", "ApiToken", "Approval", "ApprovalAction", "ApprovalStatus", "ApprovalVote",
    "AuditEntry", "AuditHead", "Base", "CardHolder", "Consent", "Counter", "CredentialStatus", "Delegate", "Device",
    "DeadLetter", "Enrollment", "EnrollmentStatus", "FeedChange", "HolderStatus", "InpatientStay",
    "AssignmentReason", "HolderSite",
    "LoginThrottle", "Role", "SignedCounter", "Site", "StaffCredential", "StaffTemplate", "SUSPICION_KINDS", "SuspicionMark", "Template", "TemplateStatus", "User", "UTCDateTime", "VerificationRecord", "utcnow",
]
