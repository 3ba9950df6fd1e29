"""SQLAlchemy 2 models of the registry. Import from here: `from server.models import CardHolder`."""

from server.models.approvals import Approval, ApprovalAction, ApprovalStatus, ApprovalVote
from server.models.audit import AuditEntry, AuditHead
from server.models.base import Base, UTCDateTime, utcnow
from server.models.feed import Counter, FeedChange
from server.models.holders import (
    CardHolder,
    Consent,
    Delegate,
    Enrollment,
    EnrollmentStatus,
    HolderStatus,
    Template,
    TemplateStatus,
)
from server.models.results import Alert, AlertStatus, DeadLetter, VerificationRecord
from server.models.sites import Device, Site
from server.models.stays import InpatientStay
from server.models.users import ApiToken, Role, User

__all__ = [
    "Alert", "AlertStatus", "ApiToken", "Approval", "ApprovalAction", "ApprovalStatus", "ApprovalVote",
    "AuditEntry", "AuditHead", "Base", "CardHolder", "Consent", "Counter", "Delegate", "Device",
    "DeadLetter", "Enrollment", "EnrollmentStatus", "FeedChange", "HolderStatus", "InpatientStay",
    "Role", "Site", "Template", "TemplateStatus", "User", "UTCDateTime", "VerificationRecord", "utcnow",
]
