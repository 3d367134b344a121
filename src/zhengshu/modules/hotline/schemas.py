"""API schemas of 12345 work orders."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.enums import (
    Channel,
    EmergencyService,
    RequestType,
    Satisfaction,
    Urgency,
)

MAX_CONTENT = 5000
PHONE_PATTERN = r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8}|\d{5,6})$"
ID_PATTERN = r"^\d{17}[\dXx]$"

Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CONTENT)
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class OrderCreate(BaseModel):
    """A citizen's request as the hotline takes it in (受理)."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel = Channel.PHONE
    requester_name: Name
    requester_phone: str = Field(pattern=PHONE_PATTERN)
    requester_id_number: str | None = Field(default=None, pattern=ID_PATTERN)
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] | None = None
    location_unit_id: uuid.UUID | None = None
    content: Text
    title: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    request_type: RequestType = RequestType.CONSULTATION
    category: str = "other"
    urgency: Urgency = Urgency.NORMAL
    external_ref: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = (
        None
    )

    @field_validator("category")
    @classmethod
    def _known_category(cls, value: str) -> str:
        if value not in categories():
            raise ValueError(f"unknown category {value!r}")
        return value


class ActionRequest(BaseModel):
    """What an action on an order carries; each action reads the fields it needs."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = None
    note: Note | None = None
    unit_id: uuid.UUID | None = None
    co_unit_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10)
    extension: str | None = Field(default=None, pattern=r"^\d{1,3}\s*(m|wh|wd)$")
    solved: bool | None = None
    satisfaction: Satisfaction | None = None
    target: EmergencyService | None = None
    parent_number: str | None = Field(default=None, max_length=32)
    # A dispatcher may correct the category when dispatching (smart dispatch learns it).
    category: str | None = Field(default=None, max_length=60)


class UnitRef(BaseModel):
    id: uuid.UUID
    name: str
    role: str


class TimelineItem(BaseModel):
    seq: int
    at: datetime
    action: str
    label: str
    from_status: str | None
    to_status: str | None
    actor_name: str
    unit_name: str | None
    note: str | None
    data: dict[str, Any] | None


class OrderRead(BaseModel):
    id: uuid.UUID
    number: str
    status: str
    status_label: str
    channel: Channel
    request_type: str | None
    category: str | None
    category_name: str | None
    urgency: str
    title: str
    content: str
    requester_name: str
    requester_phone: str
    requester_id_number: str | None
    address: str | None
    location_unit_id: uuid.UUID | None
    external_ref: str | None
    lead_unit_id: uuid.UUID | None
    units: list[UnitRef]
    due_at: datetime | None
    warn_at: datetime | None
    due_provisional: bool
    warning_level: str
    escalation_level: int
    rework_count: int
    parent_number: str | None
    answer: str | None
    reply_text: str | None
    solved: bool | None
    satisfaction: str | None
    created_at: datetime
    closed_at: datetime | None
    version: int
    actions: list[str]
    masked: bool


class OrderListItem(BaseModel):
    id: uuid.UUID
    number: str
    status: str
    status_label: str
    title: str
    category_name: str | None
    urgency: str
    requester_name: str
    requester_phone: str
    lead_unit_name: str | None
    due_at: datetime | None
    warning_level: str
    created_at: datetime


class OrderFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str | None = Field(default=None, max_length=32)
    phone: str | None = Field(default=None, max_length=20)
    text: str | None = Field(default=None, max_length=100)
    category: str | None = Field(default=None, max_length=60)
    status: str | None = Field(default=None, max_length=30)
    unit_id: uuid.UUID | None = None
    town_id: uuid.UUID | None = None
    warning_level: str | None = Field(default=None, pattern=r"^(none|yellow|red)$")
    created_from: AwareDatetime | None = None
    created_to: AwareDatetime | None = None


class OrderQuery(OrderFilters):
    """The API's list query: the filters and the page (one model, so that an unknown
    parameter is refused while ``limit`` and ``offset`` are not)."""

    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0)


class Revealed(BaseModel):
    requester_phone: str
    requester_id_number: str | None


# --- smart dispatch ----------------------------------------------------------------------


class NamedUnit(BaseModel):
    id: uuid.UUID
    name: str


class CategoryChoice(BaseModel):
    category: str
    name: str | None
    probability: float


class SuggestionRead(BaseModel):
    """What smart dispatch proposed at intake, and what became of it."""

    created_at: datetime
    model_version: int | None
    catalogue_version: int | None
    category: str | None
    category_name: str | None
    category_source: str
    category_confidence: float | None
    category_top: list[CategoryChoice]
    reasons: list[str]
    lead_unit: NamedUnit | None
    co_units: list[NamedUnit]
    unit_source: str
    unit_source_label: str
    unit_confidence: float | None
    town: NamedUnit | None
    village: NamedUnit | None
    geo_confidence: float | None
    geo_matched: list[str]
    auto: bool
    held_reason: str | None
    outcome: str | None


class RuleCreate(BaseModel):
    """A dispatch catalogue line: give ``lead_unit_id`` or ``lead_is_town``."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(max_length=60)
    town_unit_id: uuid.UUID | None = None
    lead_unit_id: uuid.UUID | None = None
    lead_is_town: bool = False
    co_unit_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10)
    auto_threshold: float | None = Field(default=None, ge=0.5, le=1.0)
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None


class RuleRead(BaseModel):
    id: uuid.UUID
    category: str
    category_name: str | None
    town_unit: NamedUnit | None
    lead_unit: NamedUnit | None
    lead_is_town: bool
    co_units: list[NamedUnit]
    auto_threshold: float | None
    note: str | None
    catalogue_version: int
    created_at: datetime
    created_by: str
    retired_at: datetime | None


class ModelRead(BaseModel):
    id: uuid.UUID
    version: int
    status: str
    source: str
    n_train: int
    n_holdout: int
    metrics: dict[str, Any]
    created_at: datetime
    created_by: str
    promoted_at: datetime | None


class RetrainQueued(BaseModel):
    job_id: uuid.UUID
    status: str


class IntakeReceiptRead(BaseModel):
    """A request accepted on the fast lane (``Prefer: respond-async``): 202 at once, the
    order registered by the worker; poll ``url`` until ``status`` is no longer queued."""

    id: uuid.UUID
    status: str
    status_label: str
    received_at: datetime
    url: str
    order_id: uuid.UUID | None = None
    number: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_message_en: str | None = None
