"""The ``DomainError`` family: business refusals that carry their HTTP status.

Services raise these, never ``HTTPException``. Each carries a stable ``code``, a message in
Chinese (what users read) and in English (for logs and partners), and optional details.
The app renders them as JSON under ``/api`` and as a page for the web console.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """A refusal the user can act on. Subclasses fix the status and a default code."""

    status_code: ClassVar[int] = 400
    default_code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message_zh: str,
        message_en: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{message_zh} / {message_en}")
        self.message_zh = message_zh
        self.message_en = message_en
        self.code = code or self.default_code
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message_zh,
                "message_en": self.message_en,
                "details": self.details,
            }
        }


class InvalidInput(DomainError):
    """Well-formed but unacceptable input (a business rule says no)."""

    status_code = 400
    default_code = "invalid_input"


class NotAuthenticated(DomainError):
    status_code = 401
    default_code = "not_authenticated"


class PermissionDenied(DomainError):
    status_code = 403
    default_code = "permission_denied"


class NotFound(DomainError):
    """Missing, or outside the caller's jurisdiction: the two look the same on purpose,
    so a unit cannot probe for another unit's records."""

    status_code = 404
    default_code = "not_found"


class Conflict(DomainError):
    """Lost a compare-and-set race, or the object is not in the expected state."""

    status_code = 409
    default_code = "conflict"


class TooManyRequests(DomainError):
    status_code = 429
    default_code = "rate_limited"


def not_found(what_zh: str, what_en: str) -> NotFound:
    return NotFound(f"{what_zh}不存在或无权查看", f"{what_en} not found")


def stale(what_zh: str, what_en: str) -> Conflict:
    return Conflict(
        f"{what_zh}已被他人修改，请刷新后重试",
        f"{what_en} was changed by someone else; reload and try again",
        code="stale_version",
    )
