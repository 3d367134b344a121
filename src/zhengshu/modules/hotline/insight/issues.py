"""Hot issues (热点问题) over the database: the clusters of ``hot.cluster`` kept as rows.

``rescan`` clusters the orders of the last ``window_days`` with ``hot.cluster`` (title,
text, the requester's phone as the caller, the time, whether it was resolved; merged
duplicates left out; the most recent ``MAX_ORDERS`` at most) and writes the result as
``HotIssue`` rows with their ``HotIssueOrder`` links. Rescans are stable:

- a cluster that continues keeps its id: each new cluster is matched to the existing
  issue it shares the most orders with (greedily, largest overlap first; each issue is
  matched at most once); an unmatched cluster is a new issue; an issue no cluster matches
  any more is ``closed`` (its orders stay linked);
- links moved by hand are ``pinned``: a rescan never changes them, so an order moved to
  another cluster stays there and an order taken out of a cluster is not put back;
- orders older than the window keep their links (an issue's history is not rewritten).

``move_order`` is the hand move (``hotline:hot:manage``), audited; both issues' figures
are recomputed. ``visible_issues`` / ``top`` narrow to the actor's jurisdiction: a town
sees the issues with an order located in its town.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, exists, false, func, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.exc import StaleDataError

from zhengshu.casework.models import Case
from zhengshu.kernel import audit, clock
from zhengshu.kernel.authz import Principal, system_principal
from zhengshu.kernel.errors import Conflict, InvalidInput, not_found
from zhengshu.modules.hotline import repository
from zhengshu.modules.hotline.insight import hot
from zhengshu.modules.hotline.insight.issue_models import HotIssue, HotIssueOrder
from zhengshu.modules.hotline.models import Order
from zhengshu.org.models import Unit

# States in which an order is a duplicate of another or was never a citizen's problem.
_SKIPPED_STATES = frozenset({"merged"})
_FINAL_STATES = frozenset({"closed", "answered", "transferred"})
# The most recent orders a scan clusters: hot.cluster is near-linear in memory but its
# pairwise similarity costs grow with the batch (4,326 messages take ~10-20 s).
MAX_ORDERS = 20_000


@dataclass(frozen=True)
class OrderFacts:
    """What a scan and the figures need of one order."""

    id: uuid.UUID
    title: str
    content: str
    phone: str
    created_at: datetime
    status: str
    solved: bool | None
    town_id: uuid.UUID | None
    town_name: str | None
    location_path: str | None

    @property
    def resolved(self) -> bool:
        """Solved at callback; else answered or closed without a callback; an order still
        open, or called back as unsolved, is unresolved."""
        if self.solved is not None:
            return self.solved
        return self.status in _FINAL_STATES


def _town_id(path: str | None) -> uuid.UUID | None:
    """The town-level unit of a location path (``/<city>/<town>/<village>/``)."""
    if not path:
        return None
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2:
        return None
    try:
        return uuid.UUID(hex=parts[1])
    except ValueError:
        return None


def _facts(session: Session, where: Iterable[ColumnElement[bool]]) -> list[OrderFacts]:
    rows = session.execute(
        select(
            Case.id,
            Case.title,
            Order.content,
            Order.requester_phone,
            Case.created_at,
            Case.status,
            Order.solved,
            Unit.path,
        )
        .join(Order, Order.id == Case.id)
        .outerjoin(Unit, Unit.id == Order.location_unit_id)
        .where(*where)
        .order_by(Case.created_at.desc(), Case.id)
        .limit(MAX_ORDERS)
    ).all()
    towns = {t for t in (_town_id(r[7]) for r in rows) if t is not None}
    names = (
        dict(session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(towns))).all())
        if towns
        else {}
    )
    out = []
    for r in rows:
        town = _town_id(r[7])
        out.append(
            OrderFacts(
                id=r[0],
                title=r[1],
                content=r[2],
                phone=r[3],
                created_at=r[4],
                status=r[5],
                solved=r[6],
                town_id=town,
                town_name=names.get(town) if town else None,
                location_path=r[7],
            )
        )
    return out


def _message(f: OrderFacts) -> hot.Message:
    return hot.Message(
        id=str(f.id),
        user=f.phone,
        title=f.title,
        text=f.content,
        at=f.created_at,
        resolved=f.resolved,
        # No place hint from the order's town: a town is too wide a place, and a hint
        # would join unrelated one-off questions of one town (the text names the place).
    )


def _holds_across_towns(facts: Sequence[OrderFacts]) -> bool:
    """Whether most of the orders name the same group of people or the same case (外卖骑手,
    58车贷案): one problem for the same people wherever they live, not one spot."""
    counts: Counter[str] = Counter()
    for f in facts:
        text = f"{f.title}，{f.content[:100]}"
        counts.update({m.key for m in hot.mentions(text) if m.kind in ("group", "event")})
    return bool(counts) and counts.most_common(1)[0][1] * 2 >= len(facts)


def _one_town_each(
    found: Sequence[hot.HotIssue], by_id: dict[uuid.UUID, OrderFacts]
) -> list[hot.HotIssue]:
    """A hot issue is one problem at one place. Estate and road names repeat across a
    city's towns (万科城, 人民路), and the same complaint written about two of them reads
    alike, so a cluster whose orders lie in several towns is cut per town (orders without
    a town go with the largest part), unless most of them name one group or case. A part
    too small to be a hot issue (fewer than 2 orders or 2 callers) is dropped."""
    out: list[hot.HotIssue] = []
    for issue in found:
        members = [uuid.UUID(m) for m in issue.message_ids]
        towns = Counter(by_id[m].town_id for m in members if by_id[m].town_id is not None)
        if len(towns) < 2 or _holds_across_towns([by_id[m] for m in members]):
            out.append(issue)
            continue
        largest = towns.most_common(1)[0][0]
        parts: dict[uuid.UUID | None, list[uuid.UUID]] = defaultdict(list)
        for m in members:
            parts[by_id[m].town_id or largest].append(m)
        for part in parts.values():
            callers = {by_id[m].phone for m in part}
            if len(part) < 2 or len(callers) < 2:
                continue
            texts = [by_id[m].title + by_id[m].content for m in part]
            place = issue.place
            if place and sum(place in t for t in texts) * 2 < len(part):
                place = None  # the cluster's place is another town's
            title = Counter(by_id[m].title for m in part).most_common(1)[0][0]
            out.append(
                replace(
                    issue,
                    message_ids=[str(m) for m in part],
                    n_messages=len(part),
                    n_users=len(callers),
                    place=place,
                    description=hot._trim(title),
                )
            )
    return out


# --- figures -------------------------------------------------------------------------------


def _refresh(
    issue: HotIssue,
    facts: Sequence[OrderFacts],
    now: datetime,
    window_days: float,
    found: hot.HotIssue | None = None,
) -> None:
    """Recompute an issue's figures from its orders (and take the scan's description,
    place and keywords when it came from a scan)."""
    issue.n_orders = len(facts)
    issue.n_callers = len({f.phone for f in facts})
    times = sorted(f.created_at for f in facts)
    issue.start_at = times[0] if times else None
    issue.end_at = times[-1] if times else None
    issue.unresolved_share = (
        round(sum(1 for f in facts if not f.resolved) / len(facts), 3) if facts else None
    )
    half = timedelta(days=window_days / 2)
    recent = sum(1 for t in times if now - half < t <= now)
    earlier = sum(1 for t in times if now - 2 * half < t <= now - half)
    issue.growth = round((recent - earlier) / max(earlier, 1), 3)
    towns = Counter(f.town_id for f in facts if f.town_id is not None)
    issue.town_unit_id = towns.most_common(1)[0][0] if towns else None
    if found is not None:
        issue.description = found.description[:200]
        issue.place = found.place[:100] if found.place else None
        issue.keywords = list(found.keywords)
    if issue.place is None and issue.town_unit_id is not None:
        issue.place = next(f.town_name for f in facts if f.town_id == issue.town_unit_id)
    if not issue.description and facts:
        issue.description = hot._trim(facts[0].title)
    issue.score = (
        hot.hotness(
            n_messages=issue.n_orders,
            n_users=issue.n_callers,
            growth=issue.growth,
            unresolved_share=issue.unresolved_share,
            has_place=issue.place is not None,
        )
        if facts
        else 0.0
    )
    issue.updated_at = now


def _members(session: Session, issue_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    ids = list(issue_ids)
    out: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    if not ids:
        return out
    for issue_id, order_id in session.execute(
        select(HotIssueOrder.issue_id, HotIssueOrder.order_id).where(
            HotIssueOrder.issue_id.in_(ids)
        )
    ).all():
        if issue_id is not None:
            out[issue_id].append(order_id)
    return out


def recompute(session: Session, issue: HotIssue, now: datetime, window_days: float = 30) -> None:
    """An issue's figures from the orders linked to it now."""
    order_ids = _members(session, [issue.id]).get(issue.id, [])
    facts = _facts(session, [Case.id.in_(order_ids)]) if order_ids else []
    _refresh(issue, facts, now, window_days)


# --- the scan -----------------------------------------------------------------------------


@dataclass
class ScanReport:
    clustered: int = 0
    issues: int = 0
    created: int = 0
    continued: int = 0
    closed: int = 0


_SCANNER = system_principal("热点扫描")


@dataclass(frozen=True)
class Clustering:
    """What a scan found, before anything is written: the orders read and their clusters."""

    now: datetime
    window_days: float
    facts: list[OrderFacts]
    found: list[hot.HotIssue]


def cluster_recent(session: Session, now: datetime, window_days: float = 30) -> Clustering:
    """The reading half of a rescan: cluster the orders of the last ``window_days`` before
    ``now``. Writes nothing, so the worker runs it outside any write transaction (on
    SQLite the clustering of a month of orders would otherwise hold the write lock)."""
    since = now - timedelta(days=window_days)
    facts = _facts(
        session,
        [
            Case.case_type == "hotline",
            Case.created_at > since,
            Case.created_at <= now,
            Case.status.not_in(_SKIPPED_STATES),
        ],
    )
    by_id = {f.id: f for f in facts}
    found = _one_town_each(
        hot.cluster([_message(f) for f in facts], window_days=window_days, as_of=now), by_id
    )
    return Clustering(now, window_days, facts, found)


def rescan(
    session: Session,
    now: datetime | None = None,
    window_days: float = 30,
    *,
    actor: Principal | None = None,
) -> ScanReport:
    """Cluster the orders of the last ``window_days`` before ``now`` and bring the
    ``HotIssue`` rows up to date (see the module docstring). The hourly job runs it as the
    system, in two transactions (``cluster_recent`` then ``apply``); the 重新计算 button
    needs ``hotline:hot:manage``. Writes one audit row."""
    if actor is not None:
        actor.require("hotline:hot:manage")
    return apply(session, cluster_recent(session, now or clock.now(), window_days), actor=actor)


def apply(
    session: Session, clustering: Clustering, *, actor: Principal | None = None
) -> ScanReport:
    """The writing half of a rescan: match the clusters to the issues and write them.
    Links are read afresh, so a hand move made since the clustering is respected."""
    now, window_days, facts = clustering.now, clustering.window_days, clustering.facts
    by_id = {f.id: f for f in facts}
    found = clustering.found
    clusters = [[uuid.UUID(m) for m in issue.message_ids] for issue in found]

    links: dict[uuid.UUID, HotIssueOrder] = {}
    ids = list(by_id)
    for start in range(0, len(ids), 500):
        for link in session.scalars(
            select(HotIssueOrder).where(HotIssueOrder.order_id.in_(ids[start : start + 500]))
        ):
            links[link.order_id] = link
    pinned = {oid for oid, link in links.items() if link.pinned}
    before = {link.issue_id for link in links.values() if link.issue_id is not None}

    # Match new clusters to existing issues by the orders they share, largest first.
    pairs: list[tuple[int, int, str, uuid.UUID]] = []
    for c, members in enumerate(clusters):
        overlap = Counter(links[m].issue_id for m in members if m in links)
        for issue_id, n in overlap.items():
            if issue_id is not None:
                pairs.append((-n, c, str(issue_id), issue_id))
    pairs.sort()
    matched: dict[int, uuid.UUID] = {}
    taken: set[uuid.UUID] = set()
    for _, c, _, issue_id in pairs:
        if c not in matched and issue_id not in taken:
            matched[c] = issue_id
            taken.add(issue_id)
    report = ScanReport(clustered=len(facts), issues=len(clusters))

    target: dict[uuid.UUID, uuid.UUID | None] = {}  # order -> its issue after the scan
    rows: dict[uuid.UUID, HotIssue] = {}
    results: dict[uuid.UUID, hot.HotIssue] = {}
    for c, (members, result) in enumerate(zip(clusters, found, strict=True)):
        row = session.get(HotIssue, matched[c]) if c in matched else None
        if row is not None:
            row.status = "active"
            report.continued += 1
        else:
            row = HotIssue(
                id=uuid.uuid4(),
                description=result.description[:200],
                place=None,
                keywords=[],
                status="active",
                manual=False,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            report.created += 1
        rows[row.id], results[row.id] = row, result
        for m in members:
            if m not in pinned:
                target[m] = row.id
    # Orders an earlier scan linked that no cluster holds now leave their issue.
    for oid, link in links.items():
        if oid not in pinned and oid not in target and link.issue_id is not None:
            target[oid] = None
    try:
        session.flush()
        for oid, issue_id in target.items():
            existing = links.get(oid)
            if existing is None:
                if issue_id is not None:
                    session.add(
                        HotIssueOrder(
                            id=uuid.uuid4(),
                            issue_id=issue_id,
                            order_id=oid,
                            pinned=False,
                            linked_at=now,
                        )
                    )
            elif issue_id is None:
                session.delete(existing)
            elif existing.issue_id != issue_id:
                existing.issue_id, existing.linked_at = issue_id, now
        session.flush()
    except StaleDataError as exc:
        raise Conflict(
            "热点问题正被他人调整，请稍后重新计算", "hot issues changed during the scan"
        ) from exc

    # Active issues that no cluster continues are closed (a hand-made one stays while it
    # still holds orders); every issue touched gets its figures again.
    touched = set(rows) | before
    for row in session.scalars(
        select(HotIssue).where(HotIssue.status == "active", HotIssue.id.not_in(list(rows)))
    ).all():
        touched.add(row.id)
    members_now = _members(session, touched)
    wanted = {oid for oids in members_now.values() for oid in oids} - set(by_id)
    wanted_list = list(wanted)
    for start in range(0, len(wanted_list), 500):
        chunk = wanted_list[start : start + 500]
        by_id.update({f.id: f for f in _facts(session, [Case.id.in_(chunk)])})
    for issue_id in sorted(touched, key=str):
        row = rows.get(issue_id) or session.get(HotIssue, issue_id)
        if row is None:
            continue
        members = members_now.get(issue_id, [])
        if issue_id not in rows and row.status == "active" and not (row.manual and members):
            row.status = "closed"
            report.closed += 1
        facts_of = [by_id[o] for o in members if o in by_id]
        _refresh(row, facts_of, now, window_days, results.get(issue_id))
    session.flush()
    audit.record(
        session,
        actor or _SCANNER,
        "hotline.hot_issue.rescan",
        entity_type="hot_issue",
        after={
            "window_days": window_days,
            "orders": report.clustered,
            "issues": report.issues,
            "created": report.created,
            "continued": report.continued,
            "closed": report.closed,
        },
    )
    return report


# --- reading, scoped -----------------------------------------------------------------------


def _in_scope(actor: Principal) -> ColumnElement[bool] | None:
    """Orders located in the actor's jurisdiction (None: every order)."""
    if repository.is_city_wide(actor):
        return None
    if actor.scope_path is None:
        return false()
    # An alias: a query that joins Unit itself (issue_orders) must not correlate it away.
    place = aliased(Unit)
    return exists().where(
        place.id == Order.location_unit_id, place.path.startswith(actor.scope_path)
    )


def visible_clause(actor: Principal) -> ColumnElement[bool] | None:
    """Issues the actor may see: all for the city; else those with an order located in
    the actor's jurisdiction."""
    if repository.is_city_wide(actor):
        return None
    if actor.scope_path is None:
        return false()
    return exists().where(
        HotIssueOrder.issue_id == HotIssue.id,
        Order.id == HotIssueOrder.order_id,
        Unit.id == Order.location_unit_id,
        Unit.path.startswith(actor.scope_path),
    )


def list_issues(
    session: Session,
    actor: Principal,
    *,
    status: str | None = "active",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[HotIssue], int]:
    """Hot issues, hottest first (``hotline:hot:read``, in jurisdiction)."""
    actor.require("hotline:hot:read")
    query = select(HotIssue).where(HotIssue.n_orders > 0)
    if status:
        query = query.where(HotIssue.status == status)
    clause = visible_clause(actor)
    if clause is not None:
        query = query.where(clause)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.scalars(
        query.order_by(HotIssue.score.desc(), HotIssue.created_at, HotIssue.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def top(session: Session, actor: Principal, limit: int = 5) -> list[HotIssue]:
    """The ``limit`` hottest active issues the actor may see (for the leaders'
    dashboard); empty for an actor without ``hotline:hot:read``."""
    if not actor.can("hotline:hot:read"):
        return []
    return list_issues(session, actor, limit=limit)[0]


def get_issue(session: Session, actor: Principal, issue_id: uuid.UUID) -> HotIssue:
    """One hot issue (``hotline:hot:read``); outside the jurisdiction reads as not found."""
    actor.require("hotline:hot:read")
    query = select(HotIssue).where(HotIssue.id == issue_id)
    clause = visible_clause(actor)
    if clause is not None:
        query = query.where(clause)
    issue = session.scalars(query).one_or_none()
    if issue is None:
        raise not_found("热点问题", "hot issue")
    return issue


@dataclass(frozen=True)
class IssueOrder:
    case: Case
    order: Order
    link: HotIssueOrder
    town: str | None


def issue_orders(session: Session, actor: Principal, issue: HotIssue) -> list[IssueOrder]:
    """The orders behind an issue that the actor may see, oldest first."""
    query = (
        select(Case, Order, HotIssueOrder, Unit.path)
        .join(Order, Order.id == Case.id)
        .join(HotIssueOrder, HotIssueOrder.order_id == Case.id)
        .outerjoin(Unit, Unit.id == Order.location_unit_id)
        .where(HotIssueOrder.issue_id == issue.id)
        .order_by(Case.created_at, Case.number)
    )
    location = _in_scope(actor)
    handled = repository.visible(actor)
    if location is not None and handled is not None:
        query = query.where(or_(location, handled))
    rows = session.execute(query).all()
    towns = {t for t in (_town_id(r[3]) for r in rows) if t is not None}
    names = (
        dict(session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(towns))).all())
        if towns
        else {}
    )
    return [
        IssueOrder(c, o, link, names.get(_town_id(path)) if path else None)  # type: ignore[arg-type]
        for c, o, link, path in rows
    ]


# --- moving by hand ------------------------------------------------------------------------


def move_order(
    session: Session,
    actor: Principal,
    order_id: uuid.UUID,
    to_issue_id: uuid.UUID | None,
    note: str | None = None,
    *,
    new_issue: bool = False,
    now: datetime | None = None,
) -> tuple[HotIssue | None, HotIssue | None]:
    """Move an order by hand (``hotline:hot:manage``, order and issues in jurisdiction):
    into another issue (``to_issue_id``), into a new issue of its own (``new_issue``), or
    out of any (``to_issue_id`` None). The link is pinned: no rescan moves it back.
    Audited; both issues' figures are recomputed. Returns (from issue, to issue)."""
    actor.require("hotline:hot:manage")
    now = now or clock.now()
    case, _ = repository.get_order(session, actor, order_id)
    note = (note or "").strip()[:500] or None
    if new_issue and to_issue_id is not None:
        raise InvalidInput(
            "不能同时移入已有热点问题和新建热点问题",
            "give either to_issue_id or new_issue",
            code="bad_move",
        )
    link = session.scalars(
        select(HotIssueOrder).where(HotIssueOrder.order_id == order_id)
    ).one_or_none()
    source = session.get(HotIssue, link.issue_id) if link and link.issue_id else None
    target: HotIssue | None = None
    if to_issue_id is not None:
        target = get_issue(session, actor, to_issue_id)
        if source is not None and source.id == target.id:
            raise InvalidInput(
                "该工单已在这个热点问题中", "the order is in that issue already", code="same_issue"
            )
    elif new_issue:
        target = HotIssue(
            id=uuid.uuid4(),
            description=hot._trim(case.title),
            place=None,
            keywords=[],
            status="active",
            manual=True,
            created_at=now,
            updated_at=now,
        )
        session.add(target)
    elif source is None:
        raise InvalidInput(
            "该工单不在任何热点问题中", "the order is in no hot issue", code="not_in_issue"
        )
    before = {"issue_id": source.id if source else None, "pinned": bool(link and link.pinned)}
    if link is None:
        link = HotIssueOrder(id=uuid.uuid4(), order_id=order_id, linked_at=now)
        session.add(link)
    link.issue_id = target.id if target else None
    link.pinned, link.moved_by, link.moved_at, link.note = True, actor.name, now, note
    link.linked_at = now
    if target is not None:
        target.status = "active"
    try:
        session.flush()
    except StaleDataError as exc:
        raise Conflict(
            "该工单的热点归属刚被他人调整，请刷新后重试", "the order was moved concurrently"
        ) from exc
    for issue in (source, target):
        if issue is not None:
            recompute(session, issue, now)
    audit.record(
        session,
        actor,
        "hotline.hot_issue.move",
        entity_type="case",
        entity_id=order_id,
        before=before,
        after={"issue_id": target.id if target else None, "new_issue": new_issue, "note": note},
    )
    return source, target


def scheduled_read(session: Session) -> Clustering:
    """The hourly job's first step (read-only): cluster the last 30 days."""
    return cluster_recent(session, clock.now())


def scheduled_write(session: Session, clustering: Clustering) -> None:
    """The hourly job's second step: write what the first found, as the system."""
    apply(session, clustering)
