"""Login: passwords, web sessions, bearer tokens, and the rate limit.

- A web login makes a ``WebSession``; the browser holds a random token in an HttpOnly,
  SameSite=Lax cookie and the table holds its SHA-256, with a CSRF token that every form
  and unsafe request must echo back.
- ``POST /api/v1/auth/token`` makes a bearer token of kind ``login`` with the same expiry.
- Partner systems' tokens (kind ``partner``) act with the token's roles inside its unit.
- Login is rate-limited per username and per client address over a sliding window;
  every failure and lock-out is an audit row, committed even though the login fails.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from sqlalchemy import Table, bindparam, delete, func, select
from sqlalchemy.orm import Session

from zhengshu.kernel import audit, clock
from zhengshu.kernel.authz import Principal, PrincipalKind
from zhengshu.kernel.errors import DomainError, NotAuthenticated, TooManyRequests
from zhengshu.kernel.settings import Settings
from zhengshu.org import repository
from zhengshu.org.models import ApiToken, LoginAttempt, Person, PersonRole, Unit, WebSession
from zhengshu.org.passwords import needs_rehash, rehash, verify_password
from zhengshu.org.roles import Role, permissions_for
from zhengshu.org.service import (
    TOKEN_PREFIX,
    hash_secret,
    make_token,
    person_principal,
    principal_for,
)


@dataclass(frozen=True)
class LoginOutcome:
    person: Person | None
    error: DomainError | None


def _anonymous(username: str, ip: str | None) -> Principal:
    return Principal(kind=PrincipalKind.PERSON, name=f"匿名({username[:64]})", ip=ip)


def authenticate(
    session: Session, settings: Settings, *, username: str, password: str, ip: str | None
) -> LoginOutcome:
    """Check a username and password under the rate limit.

    Returns the person, or the error to show; never raises for a wrong password, so the
    caller commits the attempt and its audit row before answering.
    """
    username = username.strip().lower()[:64]
    now = clock.now()
    since = now - timedelta(minutes=settings.login_window_minutes)
    by_user = repository.recent_failures(session, since=since, username=username)
    by_ip = repository.recent_failures(session, since=since, ip=ip) if ip else 0
    if (
        by_user >= settings.login_max_failures_per_user
        or by_ip >= settings.login_max_failures_per_ip
    ):
        audit.record(
            session,
            _anonymous(username, ip),
            "org.login.locked",
            entity_type="login",
            entity_id=username,
            after={"failures_user": by_user, "failures_ip": by_ip},
        )
        return LoginOutcome(
            None,
            TooManyRequests(
                f"登录失败次数过多，请 {settings.login_window_minutes} 分钟后再试",
                f"too many failed logins; try again in {settings.login_window_minutes} minutes",
            ),
        )
    person = repository.person_by_username(session, username)
    ok = verify_password(person.password_hash if person else None, password)
    session.add(
        LoginAttempt(
            id=uuid.uuid4(),
            username=username,
            ip=ip,
            at=now,
            success=bool(ok and person and person.active),
        )
    )
    if not ok or person is None or not person.active:
        reason = "inactive" if ok and person is not None else "bad_credentials"
        audit.record(
            session,
            _anonymous(username, ip),
            "org.login.failed",
            entity_type="login",
            entity_id=username,
            after={"reason": reason},
        )
        session.flush()
        return LoginOutcome(
            None,
            NotAuthenticated(
                "用户名或密码错误", "wrong username or password", code="bad_credentials"
            ),
        )
    if needs_rehash(person.password_hash):
        person.password_hash = rehash(password)
    person.last_login_at = now
    session.flush()
    return LoginOutcome(person, None)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_web_session(
    session: Session, settings: Settings, *, person: Person, ip: str | None, user_agent: str | None
) -> tuple[str, WebSession]:
    """Open a browser session; returns the cookie value (shown once) and the row. Audited."""
    token = secrets.token_urlsafe(32)
    now = clock.now()
    row = WebSession(
        id=_digest(token),
        person_id=person.id,
        csrf_token=secrets.token_urlsafe(24),
        created_at=now,
        expires_at=now + timedelta(hours=settings.session_hours),
        last_seen_at=now,
        ip=ip,
        user_agent=(user_agent or "")[:300],
    )
    session.add(row)
    session.flush()
    actor = _person_actor(session, person, ip)
    audit.record(
        session,
        actor,
        "org.login.ok",
        entity_type="person",
        entity_id=person.id,
        after={"via": "web"},
    )
    return token, row


def _person_actor(session: Session, person: Person, ip: str | None) -> Principal:
    scope = session.get(Unit, person.scope_unit_id or person.unit_id)
    assert scope is not None
    return principal_for(person, scope, ip=ip)


@dataclass(frozen=True)
class WebIdentity:
    principal: Principal
    csrf_token: str
    session_id: str


def resolve_web_session(
    session: Session, cookie: str | None, *, ip: str | None
) -> WebIdentity | None:
    """The identity behind a session cookie, or None if missing, expired or deactivated."""
    if not cookie or len(cookie) > 200:
        return None
    row = repository.web_session(session, _digest(cookie))
    if row is None or row.expires_at <= clock.now():
        return None
    person = session.get(Person, row.person_id)
    if person is None or not person.active:
        return None
    return WebIdentity(_person_actor(session, person, ip), row.csrf_token, row.id)


def end_web_session(session: Session, identity: WebIdentity) -> None:
    session.execute(delete(WebSession).where(WebSession.id == identity.session_id))
    audit.record(
        session,
        identity.principal,
        "org.logout",
        entity_type="person",
        entity_id=identity.principal.id,
    )


def issue_login_token(
    session: Session, settings: Settings, *, person: Person, ip: str | None
) -> tuple[str, ApiToken]:
    """A bearer token for a person who logged in through the API. Audited."""
    plaintext, prefix, secret_hash = make_token()
    now = clock.now()
    token = ApiToken(
        id=uuid.uuid4(),
        name="API 登录",
        kind="login",
        prefix=prefix,
        secret_hash=secret_hash,
        person_id=person.id,
        unit_id=person.scope_unit_id or person.unit_id,
        roles=[],
        created_by=person.username,
        created_at=now,
        expires_at=now + timedelta(hours=settings.session_hours),
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        _person_actor(session, person, ip),
        "org.login.ok",
        entity_type="person",
        entity_id=person.id,
        after={"via": "api"},
    )
    return plaintext, token


@dataclass(frozen=True)
class Bearer:
    """A resolved bearer token: who acts, and the token's kind (login, partner, open311)."""

    principal: Principal
    kind: str


def resolve_bearer(session: Session, raw: str | None, *, ip: str | None) -> Principal | None:
    """The principal behind ``Authorization: Bearer zs_<prefix>_<secret>``, or None."""
    bearer = resolve_bearer_token(session, raw, ip=ip)
    return bearer.principal if bearer is not None else None


# Built once, on the tables (Core, not the ORM): this runs on every API request, and a
# statement built anew, or run through the ORM, costs more in Python than the database
# takes to answer it.
_TOKENS, _PEOPLE, _UNITS, _ROLES = (
    cast(Table, model.__table__) for model in (ApiToken, Person, Unit, PersonRole)
)
_BEARER = (
    select(
        _TOKENS.c.id,
        _TOKENS.c.name,
        _TOKENS.c.kind,
        _TOKENS.c.secret_hash,
        _TOKENS.c.revoked_at,
        _TOKENS.c.expires_at,
        _TOKENS.c.person_id,
        _TOKENS.c.roles,
        _PEOPLE.c.active.label("person_active"),
        _PEOPLE.c.display_name,
        _PEOPLE.c.username,
        _PEOPLE.c.unit_id.label("person_unit_id"),
        _UNITS.c.id.label("scope_id"),
        _UNITS.c.path.label("scope_path"),
        _UNITS.c.active.label("scope_active"),
        select(func.aggregate_strings(_ROLES.c.role, ","))
        .where(_ROLES.c.person_id == _TOKENS.c.person_id)
        .scalar_subquery()
        .label("person_roles"),
    )
    .select_from(_TOKENS)
    .outerjoin(_PEOPLE, _PEOPLE.c.id == _TOKENS.c.person_id)
    .outerjoin(
        _UNITS,
        _UNITS.c.id == func.coalesce(_PEOPLE.c.scope_unit_id, _PEOPLE.c.unit_id, _TOKENS.c.unit_id),
    )
    .where(_TOKENS.c.prefix == bindparam("prefix"))
)


def resolve_bearer_token(session: Session, raw: str | None, *, ip: str | None) -> Bearer | None:
    """``resolve_bearer`` with the token's kind. This runs on every API request, so it is
    one query for columns, not ORM objects: the token, its person, the person's roles
    (role names hold no comma) and the unit whose subtree it acts in."""
    if not raw or len(raw) > 200:
        return None
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    found = session.connection().execute(_BEARER, {"prefix": parts[1]}).one_or_none()
    if found is None:
        return None
    if not hmac.compare_digest(found.secret_hash, hash_secret(parts[2])):
        return None
    now = clock.now()
    if found.revoked_at is not None or (found.expires_at is not None and found.expires_at <= now):
        return None
    if found.person_id is not None:
        if not found.person_active or found.scope_id is None:
            return None
        principal = person_principal(
            person_id=found.person_id,
            display_name=found.display_name,
            username=found.username,
            unit_id=found.person_unit_id,
            roles=found.person_roles.split(",") if found.person_roles else [],
            scope_path=found.scope_path,
            ip=ip,
            token_id=found.id,
        )
        return Bearer(principal, found.kind)
    if found.scope_id is None or not found.scope_active:
        return None
    token_roles = frozenset(Role(r) for r in found.roles)
    principal = Principal(
        kind=PrincipalKind.TOKEN,
        name=f"令牌:{found.name}",
        id=None,
        roles=frozenset(r.value for r in token_roles),
        permissions=permissions_for(token_roles),
        unit_id=found.scope_id,
        scope_path=found.scope_path,
        ip=ip,
        token_id=found.id,
    )
    return Bearer(principal, found.kind)


def purge_expired(session: Session) -> None:
    """Periodic: drop expired web sessions and login attempts older than a day."""
    now = clock.now()
    session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    session.execute(delete(LoginAttempt).where(LoginAttempt.at <= now - timedelta(days=1)))


def authenticate_api(
    session: Session, settings: Settings, *, username: str, password: str, ip: str | None
) -> LoginOutcome:
    return authenticate(session, settings, username=username, password=password, ip=ip)


__all__ = [
    "LoginOutcome",
    "WebIdentity",
    "authenticate",
    "end_web_session",
    "issue_login_token",
    "purge_expired",
    "resolve_bearer",
    "resolve_bearer_token",
    "resolve_web_session",
    "start_web_session",
]
