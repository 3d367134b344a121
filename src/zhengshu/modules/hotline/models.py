"""The 12345 work order: the citizen's request on top of its case."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from zhengshu.kernel.db import Base


class Order(Base):
    """A 12345 work order (工单). Its status, units, clock and timeline live on the case
    with the same id; this row holds what the requester said and what they were told.
    Phone and ID numbers are personal data: masked on read unless revealed (audited)."""

    __tablename__ = "orders"

    id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(20), index=True)
    requester_name: Mapped[str] = mapped_column(String(100))
    requester_phone: Mapped[str] = mapped_column(String(20), index=True)
    requester_id_number: Mapped[str | None] = mapped_column(String(18))
    address: Mapped[str | None] = mapped_column(String(300))
    location_unit_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("units.id", ondelete="RESTRICT"), index=True
    )
    content: Mapped[str] = mapped_column(Text)
    external_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    answer: Mapped[str | None] = mapped_column(Text)
    reply_text: Mapped[str | None] = mapped_column(Text)
    replied_at: Mapped[datetime | None]
    solved: Mapped[bool | None] = mapped_column(Boolean)
    satisfaction: Mapped[str | None] = mapped_column(String(30))
    called_back_at: Mapped[datetime | None]
    transferred_to: Mapped[str | None] = mapped_column(String(10))
    # The partner system's token that pushed it (the 110 platform reads its own orders).
    source_token_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="SET NULL"), index=True
    )


class Attachment(Base):
    """A photo or document on an order or on one of its timeline entries. Stored under
    the data directory by content hash; the type is checked from the bytes, not the name."""

    __tablename__ = "attachments"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("case_events.id", ondelete="SET NULL")
    )
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(String(200))
    uploaded_at: Mapped[datetime]


class Notification(Base):
    """A message (SMS by default) to the requester at registration, reply and callback, or
    to staff when an early warning is raised, sent after commit by a pluggable sender; the
    log sender only records it. ``case_id``: the order it is about (none for a warning
    that has no order, such as a spike)."""

    __tablename__ = "notifications"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    case_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str] = mapped_column(String(40))
    template: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), index=True)  # queued | sent | failed
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class Webhook(Base):
    """A partner system's endpoint for order events (e.g. the 110 platform's status
    callback). Deliveries are jobs released after commit and retried with backoff; each
    body is signed with HMAC-SHA256 of ``secret`` in ``X-Zhengshu-Signature``."""

    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    token_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(100))
    events: Mapped[list[Any]]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class IntakeReceipt(Base):
    """A request accepted on the fast lane (``Prefer: respond-async``) and not necessarily
    registered yet: durable from the moment the client is told 202, registered as an
    order by the worker (``intake.drain``) exactly once. ``actor`` is the principal that
    was authorized at acceptance; ``received_at`` becomes the order's received time."""

    __tablename__ = "intake_receipts"
    __table_args__ = (
        UniqueConstraint("caller", "key"),
        Index("ix_intake_receipts_status_run_at", "status", "run_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    caller: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    actor: Mapped[dict[str, Any]]
    body: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime]
    run_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    case_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("cases.id", ondelete="SET NULL"), index=True
    )
    number: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[dict[str, Any] | None]
    finished_at: Mapped[datetime | None]
