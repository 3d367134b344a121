"""API schemas of the organisation (Pydantic); ORM models never leave the service layer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from zhengshu.org.roles import Role, UnitKind

T = TypeVar("T")

# Names are stripped before their length is checked, so "   " is refused, not saved empty.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ShortName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]

CODE_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z\-]{0,39}$"


class UnitRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    parent_id: uuid.UUID | None
    kind: UnitKind
    code: str
    name: str
    short_name: str
    depth: int
    active: bool
    version: int


class UnitCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parent_id: uuid.UUID
    kind: UnitKind
    code: str = Field(pattern=CODE_PATTERN)
    name: Name
    short_name: ShortName | None = None
    sort_order: int = 0


class UnitUpdate(BaseModel):
    """A partial edit; ``version`` is the one the editor saw (lost-update guard)."""

    model_config = ConfigDict(extra="forbid")

    version: int
    name: Name | None = None
    short_name: ShortName | None = None
    code: str | None = Field(default=None, pattern=CODE_PATTERN)
    kind: UnitKind | None = None
    parent_id: uuid.UUID | None = None
    active: bool | None = None
    sort_order: int | None = None


class PersonRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    display_name: str
    phone: str | None
    unit_id: uuid.UUID
    scope_unit_id: uuid.UUID | None
    roles: list[Role]
    active: bool
    version: int
    last_login_at: datetime | None


USERNAME_PATTERN = r"^[a-z][a-z0-9_.\-]{2,63}$"
PHONE_PATTERN = r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$"


class PersonCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME_PATTERN)
    display_name: Name
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    unit_id: uuid.UUID
    scope_unit_id: uuid.UUID | None = None
    roles: list[Role] = Field(default_factory=list)
    password: str = Field(min_length=10, max_length=200)

    @field_validator("username", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class PersonUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    display_name: Name | None = None
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    unit_id: uuid.UUID | None = None
    scope_unit_id: uuid.UUID | None = None
    roles: list[Role] | None = None
    active: bool | None = None


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=10, max_length=200)


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class TokenIssued(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime | None


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: str = Field(pattern=r"^(partner|open311)$")
    unit_id: uuid.UUID
    roles: list[Role] = Field(default_factory=lambda: [Role.PARTNER])


class Me(BaseModel):
    id: uuid.UUID | None
    name: str
    kind: str
    roles: list[str]
    permissions: list[str]
    unit_id: uuid.UUID | None


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
