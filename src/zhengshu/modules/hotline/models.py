"""The 12345 work order: the citizen's request on top of its case."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text
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
