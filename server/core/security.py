"""Cryptographic primitives of authentication: Argon2id password hashes, random bearer tokens
stored as SHA-256, keyed hashes of national ids. The login flow itself is server/core/auth.py."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
_dummy_hash: str | None = None


def set_password_cost(time_cost: int, memory_kib: int) -> None:
    """Cost of new hashes (Settings.password_time_cost / password_memory_kib). Existing hashes keep
    the cost they were made with; verifying reads it from the hash."""
    global _hasher, _dummy_hash
    if (_hasher.time_cost, _hasher.memory_cost) != (time_cost, memory_kib):
        _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        _dummy_hash = None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the user exists, so timing does not reveal valid user names."""
    global _dummy_hash
    if password_hash is None:
        _dummy_hash = _dummy_hash or _hasher.hash("not-a-real-password")
    try:
        return _hasher.verify(password_hash or _dummy_hash, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def one_time_password() -> str:
    """An initial password handed over in person; the account must replace it at first login."""
    return secrets.token_urlsafe(12)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def national_id_hmac(key: str, national_id: str) -> str:
    """Keyed hash: lets the registry find a person by national id without storing the id."""
    normalised = national_id.strip().upper()
    return hmac.new(key.encode("utf-8"), normalised.encode("utf-8"), hashlib.sha256).hexdigest()
