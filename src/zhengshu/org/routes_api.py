"""JSON API of the organisation under ``/api/v1`` (thin: parse, call a service, answer)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from zhengshu.kernel.errors import InvalidInput
from zhengshu.org import repository, service
from zhengshu.org.auth import authenticate, issue_login_token
from zhengshu.org.deps import DB, Actor, AppSettings, client_ip, count_login
from zhengshu.org.roles import UnitKind
from zhengshu.org.schemas import (
    LoginRequest,
    Me,
    Page,
    PasswordReset,
    PersonCreate,
    PersonRead,
    PersonUpdate,
    TokenCreate,
    TokenIssued,
    UnitCreate,
    UnitRead,
    UnitUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["组织机构 org"])

Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0)]


@router.post(
    "/auth/token",
    response_model=TokenIssued,
    tags=["登录 auth"],
    responses={401: {"description": "用户名或密码错误"}, 429: {"description": "失败次数过多"}},
)
def login_for_token(
    body: LoginRequest, request: Request, db: DB, settings: AppSettings
) -> TokenIssued | JSONResponse:
    """Exchange a username and password for a bearer token (rate-limited, audited)."""
    outcome = authenticate(
        db, settings, username=body.username, password=body.password, ip=client_ip(request)
    )
    count_login(request, outcome)
    if outcome.person is None:
        assert outcome.error is not None
        # Returned, not raised: the failed attempt and its audit row must commit.
        return JSONResponse(outcome.error.to_dict(), status_code=outcome.error.status_code)
    token, row = issue_login_token(db, settings, person=outcome.person, ip=client_ip(request))
    return TokenIssued(access_token=token, expires_at=row.expires_at)


@router.get("/me", response_model=Me, tags=["登录 auth"])
def me(actor: Actor) -> Me:
    return Me(
        id=actor.id,
        name=actor.name,
        kind=str(actor.kind),
        roles=sorted(actor.roles),
        permissions=sorted(actor.permissions),
        unit_id=actor.unit_id,
    )


@router.get("/units", response_model=Page[UnitRead])
def list_units(
    db: DB,
    actor: Actor,
    kind: Annotated[list[UnitKind] | None, Query()] = None,
    parent_id: uuid.UUID | None = None,
    q: Annotated[str | None, Query(max_length=50)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[UnitRead]:
    """Units inside the caller's jurisdiction (``org:unit:read``)."""
    actor.require("org:unit:read")
    rows, total = repository.list_units(
        db,
        actor,
        kinds=[k.value for k in kind or []],
        parent_id=parent_id,
        q=q,
        limit=limit,
        offset=offset,
    )
    return Page[UnitRead](
        items=[UnitRead.model_validate(u) for u in rows], total=total, limit=limit, offset=offset
    )


@router.post("/units", response_model=UnitRead, status_code=201)
def create_unit(body: UnitCreate, db: DB, actor: Actor) -> UnitRead:
    return UnitRead.model_validate(service.create_unit(db, actor, data=body))


@router.get("/units/export.csv", response_class=PlainTextResponse)
def export_units(db: DB, actor: Actor) -> PlainTextResponse:
    """The tree in scope as CSV: ``code,parent_code,kind,name,short_name``."""
    return PlainTextResponse(
        service.export_units_csv(db, actor),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="units.csv"'},
    )


@router.post("/units/import")
async def import_units(request: Request, db: DB, actor: Actor) -> dict[str, object]:
    """Create or update units from CSV sent as the request body (``text/csv``)."""
    raw = await request.body()
    if len(raw) > 5_000_000:
        raise InvalidInput("文件超过 5 MB", "file larger than 5 MB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("文件须为 UTF-8 编码", "the file must be UTF-8") from exc
    report = service.import_units(db, actor, rows=service.parse_units_csv(text))
    return {"created": report.created, "updated": report.updated, "unchanged": report.unchanged}


@router.get("/units/{unit_id}", response_model=UnitRead)
def get_unit(unit_id: uuid.UUID, db: DB, actor: Actor) -> UnitRead:
    actor.require("org:unit:read")
    return UnitRead.model_validate(repository.get_unit(db, actor, unit_id))


@router.patch("/units/{unit_id}", response_model=UnitRead)
def update_unit(unit_id: uuid.UUID, body: UnitUpdate, db: DB, actor: Actor) -> UnitRead:
    return UnitRead.model_validate(service.update_unit(db, actor, unit_id=unit_id, data=body))


@router.get("/people", response_model=Page[PersonRead])
def list_people(
    db: DB,
    actor: Actor,
    unit_id: uuid.UUID | None = None,
    role: str | None = None,
    q: Annotated[str | None, Query(max_length=50)] = None,
    active: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[PersonRead]:
    """People inside the caller's jurisdiction (``org:person:read``)."""
    actor.require("org:person:read")
    rows, total = repository.list_people(
        db, actor, unit_id=unit_id, role=role, q=q, active=active, limit=limit, offset=offset
    )
    return Page[PersonRead](
        items=[PersonRead.model_validate(p) for p, _ in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post("/people", response_model=PersonRead, status_code=201)
def create_person(body: PersonCreate, db: DB, actor: Actor) -> PersonRead:
    return PersonRead.model_validate(service.create_person(db, actor, data=body))


@router.get("/people/{person_id}", response_model=PersonRead)
def get_person(person_id: uuid.UUID, db: DB, actor: Actor) -> PersonRead:
    actor.require("org:person:read")
    return PersonRead.model_validate(repository.get_person(db, actor, person_id))


@router.patch("/people/{person_id}", response_model=PersonRead)
def update_person(person_id: uuid.UUID, body: PersonUpdate, db: DB, actor: Actor) -> PersonRead:
    return PersonRead.model_validate(
        service.update_person(db, actor, person_id=person_id, data=body)
    )


@router.post("/people/{person_id}/password", status_code=204)
def reset_password(person_id: uuid.UUID, body: PasswordReset, db: DB, actor: Actor) -> None:
    service.reset_password(db, actor, person_id=person_id, password=body.password)


@router.post("/tokens", status_code=201)
def issue_token(body: TokenCreate, db: DB, actor: Actor) -> dict[str, object]:
    """Issue a partner system's key (e.g. the 110 platform); the secret is shown once."""
    plaintext, token = service.issue_partner_token(
        db, actor, name=body.name, kind=body.kind, unit_id=body.unit_id, roles=body.roles
    )
    return {"id": str(token.id), "token": plaintext, "prefix": token.prefix}
