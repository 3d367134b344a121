"""Use cases of the organisation: units, people, partner tokens, the tree's CSV form.

Each use case takes ``session`` and ``actor`` first, checks the policy, writes, records an
audit row in the same transaction, and never commits.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from zhengshu.kernel import audit, clock
from zhengshu.kernel.authz import Principal, PrincipalKind
from zhengshu.kernel.errors import Conflict, InvalidInput, not_found, stale
from zhengshu.org import policy, repository
from zhengshu.org.models import ApiToken, Person, PersonRole, Unit, WebSession
from zhengshu.org.passwords import hash_password
from zhengshu.org.roles import ALLOWED_PARENTS, Role, UnitKind, permissions_for
from zhengshu.org.schemas import (
    CODE_PATTERN,
    PersonCreate,
    PersonUpdate,
    UnitCreate,
    UnitUpdate,
)

CSV_HEADER = ["code", "parent_code", "kind", "name", "short_name"]


def principal_for(
    person: Person, scope_unit: Unit, *, ip: str | None = None, token_id: uuid.UUID | None = None
) -> Principal:
    """The acting identity of a person: roles, their permissions and jurisdiction."""
    return person_principal(
        person_id=person.id,
        display_name=person.display_name,
        username=person.username,
        unit_id=person.unit_id,
        roles=person.roles,
        scope_path=scope_unit.path,
        ip=ip,
        token_id=token_id,
    )


def person_principal(
    *,
    person_id: uuid.UUID,
    display_name: str,
    username: str,
    unit_id: uuid.UUID,
    roles: Iterable[str],
    scope_path: str,
    ip: str | None,
    token_id: uuid.UUID | None,
) -> Principal:
    """``principal_for`` from the columns it needs (bearer tokens are resolved without
    loading the person)."""
    held = frozenset(Role(r) for r in roles)
    return Principal(
        kind=PrincipalKind.PERSON if token_id is None else PrincipalKind.TOKEN,
        name=f"{display_name}({username})",
        id=person_id,
        roles=frozenset(r.value for r in held),
        permissions=permissions_for(held),
        unit_id=unit_id,
        scope_path=scope_path,
        ip=ip,
        token_id=token_id,
    )


# --- units -------------------------------------------------------------------------


def _check_parent(kind: UnitKind, parent: Unit | None) -> None:
    allowed = ALLOWED_PARENTS[kind]
    parent_kind = UnitKind(parent.kind) if parent else None
    if parent_kind not in allowed:
        where = parent.name if parent else "根节点"
        raise InvalidInput(
            f"{kind.label}不能设在{where}之下",
            f"a {kind.value} cannot sit under {parent_kind or 'the root'}",
            code="bad_parent",
        )


def _place(unit: Unit, parent: Unit | None) -> None:
    unit.parent_id = parent.id if parent else None
    unit.path = f"{parent.path if parent else '/'}{unit.id.hex}/"
    unit.depth = parent.depth + 1 if parent else 0


def _check_code_free(
    session: Session, actor: Principal, code: str, *, except_id: uuid.UUID | None = None
) -> None:
    other = repository.unit_by_code(session, code)
    if other is not None and other.id != except_id:
        # Name the holder only when the actor may see it: codes must not leak other towns.
        holder = f"“{other.name}”" if actor.covers(other.path) else "其他单位"
        raise Conflict(
            f"编码 {code} 已被{holder}使用", f"code {code} is taken", code="duplicate_code"
        )


def create_unit(session: Session, actor: Principal, *, data: UnitCreate) -> Unit:
    """Add a unit under a parent inside the actor's scope. ``org:unit:write``; audited."""
    parent = repository.get_unit(session, actor, data.parent_id)
    policy.check_unit_write(actor, parent.path)
    _check_parent(data.kind, parent)
    _check_code_free(session, actor, data.code)
    return _new_unit(
        session,
        actor,
        parent=parent,
        kind=data.kind,
        code=data.code,
        name=data.name.strip(),
        short_name=(data.short_name or data.name).strip(),
        sort_order=data.sort_order,
        action="org.unit.create",
    )


def _new_unit(
    session: Session,
    actor: Principal,
    *,
    parent: Unit | None,
    kind: UnitKind,
    code: str,
    name: str,
    short_name: str,
    sort_order: int,
    action: str,
) -> Unit:
    now = clock.now()
    unit = Unit(
        id=uuid.uuid4(),
        kind=kind.value,
        code=code,
        name=name,
        short_name=short_name,
        sort_order=sort_order,
        active=True,
        created_at=now,
        updated_at=now,
    )
    _place(unit, parent)
    session.add(unit)
    session.flush()
    audit.record(
        session, actor, action, entity_type="unit", entity_id=unit.id, after=unit.snapshot()
    )
    return unit


def update_unit(
    session: Session, actor: Principal, *, unit_id: uuid.UUID, data: UnitUpdate
) -> Unit:
    """Rename, recode, move or (de)activate a unit. Moving re-paths its whole subtree.
    ``org:unit:write`` over the unit and its new parent; compare-and-set on ``version``."""
    unit = repository.get_unit(session, actor, unit_id)
    policy.check_unit_write(actor, unit.path)
    if unit.version != data.version:
        raise stale("单位", "unit")
    before = unit.snapshot()
    if data.code is not None and data.code != unit.code:
        _check_code_free(session, actor, data.code, except_id=unit.id)
        unit.code = data.code
    if data.name is not None:
        unit.name = data.name.strip()
    if data.short_name is not None:
        unit.short_name = data.short_name.strip()
    if data.sort_order is not None:
        unit.sort_order = data.sort_order
    if data.active is not None:
        unit.active = data.active
    moving = data.parent_id is not None and data.parent_id != unit.parent_id
    if (data.kind is not None and data.kind.value != unit.kind) or moving:
        # Check the unit's kind as it will be against the parent it will have, and its
        # children against that kind, before changing anything.
        kind = data.kind or UnitKind(unit.kind)
        parent: Unit | None
        if moving:
            assert data.parent_id is not None
            parent = target = repository.get_unit(session, actor, data.parent_id)
            if target.path.startswith(unit.path):
                raise InvalidInput(
                    "不能把单位移到它自己的下级", "cannot move a unit under its own subtree"
                )
        else:
            parent = session.get(Unit, unit.parent_id) if unit.parent_id else None
        _check_parent(kind, parent)
        _check_children_fit(session, unit, kind)
        unit.kind = kind.value
        if moving:
            assert parent is not None
            _move(session, actor, unit, parent)
    unit.updated_at = clock.now()
    session.flush()
    audit.record(
        session,
        actor,
        "org.unit.update",
        entity_type="unit",
        entity_id=unit.id,
        before=before,
        after=unit.snapshot(),
    )
    return unit


def _check_children_fit(session: Session, unit: Unit, kind: UnitKind) -> None:
    for child in repository.children(session, unit):
        if kind not in ALLOWED_PARENTS[UnitKind(child.kind)]:
            raise InvalidInput(
                f"“{unit.name}”下有{UnitKind(child.kind).label}“{child.name}”，不能改为{kind.label}",
                f"a {child.kind} below cannot sit under a {kind.value}",
                code="bad_parent",
            )


def _move(session: Session, actor: Principal, unit: Unit, parent: Unit) -> None:
    policy.check_unit_write(actor, parent.path)
    old_path, old_depth = unit.path, unit.depth
    descendants = [u for u in repository.subtree(session, unit) if u.id != unit.id]
    _place(unit, parent)
    for child in descendants:
        child.path = unit.path + child.path[len(old_path) :]
        child.depth = child.depth - old_depth + unit.depth


# --- the tree as CSV ----------------------------------------------------------------


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


def export_units_csv(session: Session, actor: Principal) -> str:
    """The tree in scope as CSV (``code,parent_code,kind,name,short_name``), parents first."""
    actor.require("org:unit:read")
    units = repository.all_units(session, actor)
    codes = {u.id: u.code for u in units}
    parent_codes = {u.parent_id for u in units if u.parent_id and u.parent_id not in codes}
    for parent_id in parent_codes:
        parent = session.get(Unit, parent_id)
        if parent is not None:
            codes[parent_id] = parent.code
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for unit in units:
        writer.writerow(
            [
                unit.code,
                codes.get(unit.parent_id, "") if unit.parent_id else "",
                unit.kind,
                unit.name,
                unit.short_name,
            ]
        )
    return out.getvalue()


def parse_units_csv(text: str) -> list[dict[str, str]]:
    """Read the CSV form of the tree; reports every bad line at once (Chinese + English)."""
    text = text.lstrip("\ufeff")
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or [f.strip() for f in reader.fieldnames][:5] != CSV_HEADER:
        raise InvalidInput(
            f"表头应为：{','.join(CSV_HEADER)}",
            f"header must be: {','.join(CSV_HEADER)}",
            code="bad_csv",
        )
    rows, errors = [], []
    seen: set[str] = set()
    for line, raw in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
        problems = []
        if not row["code"]:
            problems.append("缺少编码 / code missing")
        elif row["code"] in seen:
            problems.append(f"编码 {row['code']} 重复 / duplicate code")
        elif not re.fullmatch(CODE_PATTERN, row["code"]):
            problems.append(f"编码“{row['code']}”只能由字母、数字和“-”组成 / bad code")
        if row["kind"] not in {k.value for k in UnitKind}:
            problems.append(f"类型“{row['kind']}”无效 / unknown kind")
        if not row["name"]:
            problems.append("缺少名称 / name missing")
        if len(row["name"]) > 100 or len(row["short_name"]) > 50 or len(row["code"]) > 40:
            problems.append("字段过长 / field too long")
        if problems:
            errors.append(f"第{line}行：" + "；".join(problems))
        seen.add(row["code"])
        rows.append(row)
    if errors:
        raise InvalidInput(
            "CSV 有错误，未导入任何数据",
            "the CSV has errors; nothing imported",
            code="bad_csv",
            details={"errors": errors},
        )
    return rows


def import_units(
    session: Session, actor: Principal, *, rows: Sequence[dict[str, str]]
) -> ImportReport:
    """Create or update units by code (parents may come after children in the file).

    All or nothing: every bad row is reported and the caller's transaction rolls back. A
    unit that exists and is unchanged is left alone; one that differs is updated
    (audited). The root (empty parent_code) may only be created when the tree is empty.
    A parent outside the actor's jurisdiction reads as unknown (like a missing one), except
    as the unchanged parent of the actor's own scope root, so a town's own export
    re-imports cleanly.
    """
    actor.require("org:unit:write")
    report = ImportReport()
    pending = list(rows)
    by_code = {row["code"]: row for row in rows}
    while pending:
        progressed, waiting = False, []
        for row in pending:
            parent_code = row["parent_code"]
            parent = repository.unit_by_code(session, parent_code) if parent_code else None
            if parent_code and parent is None and parent_code in by_code:
                waiting.append(row)
                continue
            if parent_code and (
                parent is None or not _parent_acceptable(session, actor, row, parent)
            ):
                report.errors.append(
                    f"{row['code']}：上级编码 {parent_code} 不存在 / unknown parent"
                )
                continue
            _import_row(session, actor, row, parent, report)
            progressed = True
        if not progressed and waiting:
            report.errors.extend(f"{r['code']}：上级形成环 / parent cycle" for r in waiting)
            break
        pending = waiting
    if report.errors:
        raise InvalidInput(
            "导入失败，未导入任何数据",
            "import failed; nothing imported",
            code="bad_csv",
            details={"errors": report.errors},
        )
    return report


def _parent_acceptable(
    session: Session, actor: Principal, row: dict[str, str], parent: Unit
) -> bool:
    if actor.covers(parent.path):
        return True
    existing = repository.unit_by_code(session, row["code"])
    return existing is not None and existing.parent_id == parent.id and actor.covers(existing.path)


def _import_row(
    session: Session,
    actor: Principal,
    row: dict[str, str],
    parent: Unit | None,
    report: ImportReport,
) -> None:
    kind = UnitKind(row["kind"])
    short = row["short_name"] or row["name"]
    existing = repository.unit_by_code(session, row["code"])
    if existing is not None and not actor.covers(existing.path):
        report.errors.append(f"{row['code']}：编码已被其他单位使用 / code taken")
        return
    if parent is None and existing is None and repository.root_unit(session) is not None:
        report.errors.append(f"{row['code']}：已有根单位，只能有一个 / a root exists already")
        return
    if parent is None and existing is None and actor.kind is not PrincipalKind.SYSTEM:
        report.errors.append(f"{row['code']}：缺少上级编码 / parent_code missing")
        return
    if existing is None:
        if parent is not None:
            policy.check_unit_write(actor, parent.path)
            _check_parent(kind, parent)
        _new_unit(
            session,
            actor,
            parent=parent,
            kind=kind,
            code=row["code"],
            name=row["name"],
            short_name=short,
            sort_order=0,
            action="org.unit.import",
        )
        report.created += 1
        return
    same_parent = existing.parent_id == (parent.id if parent else None)
    if (existing.name, existing.short_name, existing.kind) == (
        row["name"],
        short,
        kind.value,
    ) and same_parent:
        report.unchanged += 1
        return
    update_unit(
        session,
        actor,
        unit_id=existing.id,
        data=UnitUpdate(
            version=existing.version,
            name=row["name"],
            short_name=short,
            kind=kind if kind.value != existing.kind else None,
            parent_id=parent.id if parent and not same_parent else None,
        ),
    )
    report.updated += 1


def session_root_path(session: Session) -> str | None:
    root = repository.root_unit(session)
    return root.path if root else None


# --- people -------------------------------------------------------------------------


def _set_roles(person: Person, roles: Iterable[Role]) -> None:
    wanted = {Role(r).value for r in roles}
    person.role_rows = [row for row in person.role_rows if row.role in wanted] + [
        PersonRole(person_id=person.id, role=r) for r in sorted(wanted - set(person.roles))
    ]


def create_person(session: Session, actor: Principal, *, data: PersonCreate) -> Person:
    """Add a staff account in a unit inside the actor's scope. ``org:person:write``;
    audited (without the password)."""
    unit = repository.get_unit(session, actor, data.unit_id)
    scope = repository.get_unit(session, actor, data.scope_unit_id) if data.scope_unit_id else unit
    policy.check_person_write(actor, unit.path, scope.path)
    policy.check_grantable(session_root_path(session), actor, data.roles)
    if repository.person_by_username(session, data.username) is not None:
        raise Conflict(
            f"用户名 {data.username} 已存在",
            f"username {data.username} is taken",
            code="duplicate_username",
        )
    now = clock.now()
    person = Person(
        id=uuid.uuid4(),
        username=data.username,
        display_name=data.display_name.strip(),
        phone=data.phone,
        unit_id=unit.id,
        scope_unit_id=data.scope_unit_id if data.scope_unit_id != unit.id else None,
        password_hash=hash_password(data.password),
        active=True,
        created_at=now,
        updated_at=now,
        password_changed_at=now,
        role_rows=[],
    )
    _set_roles(person, data.roles)
    session.add(person)
    session.flush()
    audit.record(
        session,
        actor,
        "org.person.create",
        entity_type="person",
        entity_id=person.id,
        after=person.snapshot(),
    )
    return person


def update_person(
    session: Session, actor: Principal, *, person_id: uuid.UUID, data: PersonUpdate
) -> Person:
    """Edit a person's details, unit, scope, roles or active flag. ``org:person:write``
    over the person's current and new unit; compare-and-set on ``version``; audited.
    Deactivating ends the person's web sessions and login tokens."""
    person = repository.get_person(session, actor, person_id)
    policy.check_person_write(actor, *_person_paths(session, person))
    if person.version != data.version:
        raise stale("人员", "person")
    policy.check_not_self_lockout(actor, person.id, active=data.active, roles=data.roles)
    before = person.snapshot()
    if data.unit_id is not None and data.unit_id != person.unit_id:
        unit = repository.get_unit(session, actor, data.unit_id)
        policy.check_person_write(actor, unit.path)
        person.unit_id = unit.id
    if "scope_unit_id" in data.model_fields_set:
        if data.scope_unit_id is not None:
            scope = repository.get_unit(session, actor, data.scope_unit_id)
            policy.check_person_write(actor, scope.path)
        person.scope_unit_id = data.scope_unit_id
    if data.display_name is not None:
        person.display_name = data.display_name.strip()
    if "phone" in data.model_fields_set:
        person.phone = data.phone
    if data.roles is not None:
        policy.check_grantable(session_root_path(session), actor, data.roles)
        _set_roles(person, data.roles)
    if data.active is not None:
        person.active = data.active
    person.updated_at = clock.now()
    session.flush()
    if data.active is False:
        _end_sessions(session, person)
    audit.record(
        session,
        actor,
        "org.person.update",
        entity_type="person",
        entity_id=person.id,
        before=before,
        after=person.snapshot(),
    )
    return person


def reset_password(
    session: Session, actor: Principal, *, person_id: uuid.UUID, password: str
) -> Person:
    """Set a new password (admin reset, or a person changing their own); ends the
    person's other sessions. Audited without the secret."""
    person = repository.get_person(session, actor, person_id)
    if actor.id != person.id:
        policy.check_person_write(actor, *_person_paths(session, person))
    person.password_hash = hash_password(password)
    person.password_changed_at = person.updated_at = clock.now()
    session.flush()
    _end_sessions(session, person)
    audit.record(
        session,
        actor,
        "org.person.password_reset",
        entity_type="person",
        entity_id=person.id,
        after={"by_self": actor.id == person.id},
    )
    return person


def _person_paths(session: Session, person: Person) -> list[str]:
    """The units whose jurisdiction a change to this person touches: their unit and,
    when wider, their scope (a town admin must not take over a city-wide account)."""
    ids = {person.unit_id, person.scope_unit_id or person.unit_id}
    paths = []
    for unit_id in ids:
        unit = session.get(Unit, unit_id)
        assert unit is not None
        paths.append(unit.path)
    return paths


def _end_sessions(session: Session, person: Person) -> None:
    session.execute(delete(WebSession).where(WebSession.person_id == person.id))
    session.execute(
        update(ApiToken)
        .where(ApiToken.person_id == person.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )


# --- tokens -------------------------------------------------------------------------

TOKEN_PREFIX = "zs"


def hash_secret(secret: str) -> str:
    # Token secrets are 256 random bits, so a fast hash suffices (no dictionary to attack).
    return hashlib.sha256(secret.encode()).hexdigest()


def make_token() -> tuple[str, str, str]:
    """A new token: (plaintext, prefix, secret hash). Plaintext is ``zs_<prefix>_<secret>``."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{TOKEN_PREFIX}_{prefix}_{secret}", prefix, hash_secret(secret)


def issue_partner_token(
    session: Session,
    actor: Principal,
    *,
    name: str,
    kind: str,
    unit_id: uuid.UUID,
    roles: Sequence[Role],
    expires_at: datetime | None = None,
) -> tuple[str, ApiToken]:
    """Issue a key for a partner system (e.g. the 110 platform) acting within ``unit_id``.
    ``org:token:write``; audited (never the secret). Returns the plaintext once."""
    actor.require("org:token:write")
    unit = repository.get_unit(session, actor, unit_id)
    policy.check_in_scope(actor, [unit.path])
    policy.check_token_roles(roles)
    plaintext, prefix, secret_hash = make_token()
    token = ApiToken(
        id=uuid.uuid4(),
        name=name.strip(),
        kind=kind,
        prefix=prefix,
        secret_hash=secret_hash,
        person_id=None,
        unit_id=unit.id,
        roles=sorted(Role(r).value for r in roles),
        created_by=actor.name,
        created_at=clock.now(),
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        actor,
        "org.token.issue",
        entity_type="api_token",
        entity_id=token.id,
        after={
            "name": token.name,
            "kind": kind,
            "unit_id": unit.id,
            "roles": token.roles,
            "prefix": prefix,
        },
    )
    return plaintext, token


def revoke_token(session: Session, actor: Principal, *, token_id: uuid.UUID) -> ApiToken:
    actor.require("org:token:write")
    token = session.get(ApiToken, token_id)
    unit = session.get(Unit, token.unit_id) if token else None
    if token is None or unit is None or not actor.covers(unit.path):
        raise not_found("令牌", "token")
    if token.revoked_at is None:
        token.revoked_at = clock.now()
        session.flush()
        audit.record(
            session,
            actor,
            "org.token.revoke",
            entity_type="api_token",
            entity_id=token.id,
            after={"revoked": True},
        )
    return token
