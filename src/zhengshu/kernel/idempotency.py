"""Idempotency keys: a POST repeated with the same ``Idempotency-Key`` creates at most one
result, and the repeat gets the first answer back.

The row is written in the same transaction as the result it guards, so either both
commit or neither does; a concurrent duplicate loses on the primary key and is answered
from the winner's row (or told to retry while the winner is still in flight).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from zhengshu.kernel.db import Base


class IdempotencyKey(Base):
    """The first response to a keyed request, per caller (a key is scoped to whoever sent
    it, so two partners cannot collide or read each other's answers)."""

    __tablename__ = "idempotency_keys"

    caller: Mapped[str] = mapped_column(String(80), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(300))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(index=True)
