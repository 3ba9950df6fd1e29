"""Staff accounts and their bearer tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from fpverify.server.models.base import Base, UTCDateTime, utcnow


class Role(enum.StrEnum):
    # Every role but sysadmin reaches personal data, and sysadmin manages accounts: so granting any
    # role is a special operation (server/crud/approvals.py), approved by a supervisor.
    SYSADMIN = "sysadmin"  # runs the system (users, sites, devices); sees no personal or biometric data
    ENROLLER = "enroller"  # registers card holders, consents, delegates, stays; uploads enrollments
    AUDITOR = "auditor"  # read-only, including the audit log
    SUPERVISOR = "supervisor"  # special operations, each approved by a second supervisor; handles alerts
    HIS = "his"  # a hospital information system's service account: one verification result by its id
    # A desk clerk: signs in at the stations of their site with a finger or PIN (server/models/staff.py);
    # no API or dashboard access to personal data. Granting it is a special operation like any role.
    OPERATOR = "operator"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Who asked for the account ("console" for the server's CLI): never approves that person's requests.
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Set with a one-time password (new account, reset): login only lets the user choose their own.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ApiToken(Base):
    """A bearer token of a staff user; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class LoginThrottle(Base):
    """Failed logins of one client for one user name (username "" counts the client's attempts
    with any name in the current minute). Kept in the database so every registry process and a
    restart see the same delays."""

    __tablename__ = "login_throttle"
    __table_args__ = (UniqueConstraint("client", "username", name="uq_login_throttle_client_username"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)  # per user: in a row; per client: this minute
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)  # last failure / minute start
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
