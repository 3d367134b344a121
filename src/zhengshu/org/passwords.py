"""Password hashing with argon2id (the OWASP-recommended algorithm), and the rules."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from zhengshu.kernel.errors import InvalidInput

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a wrong name costs as much as a
# wrong password and response times do not reveal which accounts exist.
_DUMMY = _hasher.hash("zhengshu-dummy-password")


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def rehash(password: str) -> str:
    """Hash again with current parameters (on login, after argon2's defaults were raised);
    the strength rule was met when the password was set and is not re-checked."""
    return _hasher.hash(password)


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


def check_strength(password: str) -> None:
    """At least 10 characters from at least three of: lower, upper, digits, symbols (the
    common rule of government information-security assessments, 等保)."""
    classes = sum(
        [
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        ]
    )
    if len(password) < 10 or classes < 3:
        raise InvalidInput(
            "密码至少 10 位，且包含大写字母、小写字母、数字、符号中的三种",
            "password needs 10+ characters from three of: upper, lower, digits, symbols",
            code="weak_password",
        )
