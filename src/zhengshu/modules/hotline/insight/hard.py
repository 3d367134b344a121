"""难题清单: tracked hard problems, their matching orders and monthly trends.

A hard problem matches an order when the order's category is one of its category codes
(any category when none is given) and its title or text holds one of its keywords (any
text when none is given); a keyword ``电动车+充电`` needs every part. Per month (Beijing
time) of the last ``months``: matching orders (merged duplicates left out), orders called
back, solved among them, and the resolution rate = solved / called back.

Targets, judged on the last full month before now:

- ``resolution_rate``: that month's resolution rate >= ``target_value`` (0.9 = 90%);
- ``volume_drop``: that month's volume <= (1 - ``target_value``) x the volume of
  ``baseline_month`` (0.2 = down 20%).

Edits need ``hotline:hard:manage``: each raises the version, keeps the previous state
in ``hard_problem_versions`` and writes an audit row. Figures are narrowed to the
orders located in the reader's jurisdiction (the city sees all).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from zhengshu.casework.models import Case
from zhengshu.kernel import audit, clock
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.kernel.errors import Conflict, InvalidInput, not_found
from zhengshu.modules.hotline import repository
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.insight.issue_models import HardProblem, HardProblemVersion
from zhengshu.modules.hotline.models import Order
from zhengshu.org.models import Unit

TARGET_KINDS = {"resolution_rate": "解决率达到", "volume_drop": "月工单量下降"}
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

# The two examples of the issue; added from the page (载入示例) or by hand.
EXAMPLES: tuple[dict[str, Any], ...] = (
    {
        "name": "小区电动车停放充电",
        "category_codes": [],
        "keywords": ["电动车+充电", "电瓶车+充电", "电动车+停放", "飞线充电"],
        "target_kind": "resolution_rate",
        "target_value": 0.9,
        "note": "楼道停放、飞线充电的消防隐患",
    },
    {
        "name": "占道经营",
        "category_codes": [],
        "keywords": ["占道经营", "流动摊贩", "占道摆摊", "乱摆卖"],
        "target_kind": "volume_drop",
        "target_value": 0.2,
        "note": "流动摊贩占用道路经营",
    },
)


@dataclass(frozen=True)
class HardInput:
    name: str
    category_codes: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    target_kind: str = "resolution_rate"
    target_value: float = 0.9
    baseline_month: str | None = None
    owner_unit_id: uuid.UUID | None = None
    active: bool = True
    note: str | None = None


def _clean(data: HardInput) -> HardInput:
    name = data.name.strip()
    if not name or len(name) > 100:
        raise InvalidInput(
            "名称须为 1 到 100 个字", "name must be 1-100 characters", code="bad_name"
        )
    codes = tuple(dict.fromkeys(c.strip() for c in data.category_codes if c.strip()))
    unknown = [c for c in codes if c not in categories()]
    if unknown:
        raise InvalidInput(
            f"未知的诉求分类：{'、'.join(unknown)}", "unknown category", code="bad_category"
        )
    keywords = tuple(
        dict.fromkeys(
            "+".join(p.strip() for p in k.split("+") if p.strip())
            for k in data.keywords
            if k.strip().strip("+")
        )
    )
    if any(len(k) > 50 for k in keywords) or len(keywords) > 50:
        raise InvalidInput("关键词过长或过多", "too many or too long keywords", code="bad_keywords")
    if not codes and not keywords:
        raise InvalidInput(
            "须至少给出一个诉求分类或关键词", "give categories or keywords", code="no_rule"
        )
    if data.target_kind not in TARGET_KINDS:
        raise InvalidInput("目标类型无效", "unknown target kind", code="bad_target")
    if not 0 < data.target_value <= 1:
        raise InvalidInput(
            "目标值须在 0 到 100% 之间", "target must be in (0, 1]", code="bad_target"
        )
    baseline = (data.baseline_month or "").strip() or None
    if baseline is not None and not _MONTH.match(baseline):
        raise InvalidInput("基准月份格式应为 2026-01", "baseline_month: YYYY-MM", code="bad_month")
    note = (data.note or "").strip()[:500] or None
    return HardInput(
        name, codes, keywords, data.target_kind, data.target_value, baseline,
        data.owner_unit_id, data.active, note,
    )  # fmt: skip


def _snapshot(row: HardProblem) -> dict[str, Any]:
    return {
        "name": row.name,
        "category_codes": list(row.category_codes),
        "keywords": list(row.keywords),
        "target_kind": row.target_kind,
        "target_value": row.target_value,
        "baseline_month": row.baseline_month,
        "owner_unit_id": str(row.owner_unit_id) if row.owner_unit_id else None,
        "active": row.active,
        "note": row.note,
    }


def _check_unit(session: Session, unit_id: uuid.UUID | None) -> None:
    if unit_id is not None and session.get(Unit, unit_id) is None:
        raise InvalidInput("责任单位不存在", "unknown owner unit", code="bad_unit")


def _save_version(session: Session, actor: Principal, row: HardProblem, now: datetime) -> None:
    session.add(
        HardProblemVersion(
            id=uuid.uuid4(),
            problem_id=row.id,
            version=row.version,
            data=_snapshot(row),
            changed_by=actor.name,
            changed_at=now,
        )
    )


def create(session: Session, actor: Principal, data: HardInput) -> HardProblem:
    """Add a hard problem (``hotline:hard:manage``); 409 on a name in use. Audited."""
    actor.require("hotline:hard:manage")
    data = _clean(data)
    _check_unit(session, data.owner_unit_id)
    now = clock.now()
    row = HardProblem(
        id=uuid.uuid4(),
        name=data.name,
        category_codes=list(data.category_codes),
        keywords=list(data.keywords),
        target_kind=data.target_kind,
        target_value=data.target_value,
        baseline_month=data.baseline_month,
        owner_unit_id=data.owner_unit_id,
        active=data.active,
        note=data.note,
        created_by=actor.name,
        created_at=now,
        updated_by=actor.name,
        updated_at=now,
        version=1,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "已有同名难题", "a hard problem of that name exists", code="name_taken"
        ) from exc
    _save_version(session, actor, row, now)
    audit.record(
        session,
        actor,
        "hotline.hard_problem.create",
        entity_type="hard_problem",
        entity_id=row.id,
        after=_snapshot(row),
    )
    return row


def update_problem(
    session: Session,
    actor: Principal,
    problem_id: uuid.UUID,
    data: HardInput,
    *,
    expected_version: int | None = None,
) -> HardProblem:
    """Edit a hard problem (``hotline:hard:manage``): compare-and-set on the version
    (409 when someone saved in between), the new state kept as a version; audited."""
    actor.require("hotline:hard:manage")
    row = get(session, actor, problem_id)
    if expected_version is not None and expected_version != row.version:
        raise Conflict(
            "该难题已被他人修改，请刷新后重试", "changed meanwhile", code="stale_version"
        )
    data = _clean(data)
    _check_unit(session, data.owner_unit_id)
    before = _snapshot(row)
    now = clock.now()
    row.name, row.category_codes, row.keywords = (
        data.name,
        list(data.category_codes),
        list(data.keywords),
    )
    row.target_kind, row.target_value = data.target_kind, data.target_value
    row.baseline_month, row.owner_unit_id = data.baseline_month, data.owner_unit_id
    row.active, row.note = data.active, data.note
    row.updated_by, row.updated_at = actor.name, now
    try:
        with session.begin_nested():
            session.flush()
    except StaleDataError as exc:
        raise Conflict(
            "该难题已被他人修改，请刷新后重试", "changed meanwhile", code="stale_version"
        ) from exc
    except IntegrityError as exc:
        raise Conflict(
            "已有同名难题", "a hard problem of that name exists", code="name_taken"
        ) from exc
    _save_version(session, actor, row, now)
    audit.record(
        session,
        actor,
        "hotline.hard_problem.update",
        entity_type="hard_problem",
        entity_id=row.id,
        before=before,
        after=_snapshot(row),
    )
    return row


def _require_read(actor: Principal) -> None:
    if not (actor.can("hotline:hard:manage") or actor.can("hotline:report:read")):
        actor.require("hotline:hot:read")


def list_problems(session: Session, actor: Principal) -> list[HardProblem]:
    _require_read(actor)
    return list(
        session.scalars(select(HardProblem).order_by(HardProblem.active.desc(), HardProblem.name))
    )


def get(session: Session, actor: Principal, problem_id: uuid.UUID) -> HardProblem:
    _require_read(actor)
    row = session.get(HardProblem, problem_id)
    if row is None:
        raise not_found("难题", "hard problem")
    return row


def history(session: Session, problem_id: uuid.UUID) -> list[HardProblemVersion]:
    return list(
        session.scalars(
            select(HardProblemVersion)
            .where(HardProblemVersion.problem_id == problem_id)
            .order_by(HardProblemVersion.version.desc())
        )
    )


def load_examples(session: Session, actor: Principal) -> int:
    """Add the examples not yet listed (by name); the number added."""
    actor.require("hotline:hard:manage")
    names = set(session.scalars(select(HardProblem.name)))
    added = 0
    for example in EXAMPLES:
        if example["name"] in names:
            continue
        create(
            session,
            actor,
            HardInput(
                name=example["name"],
                category_codes=tuple(example["category_codes"]),
                keywords=tuple(example["keywords"]),
                target_kind=example["target_kind"],
                target_value=example["target_value"],
                note=example["note"],
            ),
        )
        added += 1
    return added


# --- matching and trends --------------------------------------------------------------------


def matches(problem: HardProblem, category: str | None, text: str) -> bool:
    """Whether an order of ``category`` with ``text`` (title + content) is this problem."""
    if problem.category_codes and category not in problem.category_codes:
        return False
    if not problem.keywords:
        return True
    return any(all(part in text for part in k.split("+")) for k in problem.keywords)


def _month_start(year: int, month: int) -> datetime:
    return datetime.combine(date(year, month, 1), time(0), SHANGHAI)


def _shift(year: int, month: int, by: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + by
    return index // 12, index % 12 + 1


@dataclass
class MonthFigures:
    month: str  # 2026-09
    volume: int = 0
    called_back: int = 0
    solved: int = 0

    @property
    def resolution_rate(self) -> float | None:
        return round(self.solved / self.called_back, 4) if self.called_back else None


@dataclass(frozen=True)
class Trend:
    months: list[MonthFigures]
    judged_month: str
    target_met: bool | None  # None: not enough data to say
    judged_value: float | None


def trend(
    session: Session,
    actor: Principal,
    problem: HardProblem,
    *,
    months: int = 12,
    now: datetime | None = None,
) -> Trend:
    """Per month (the last ``months`` up to the current one) the matching orders, those
    called back and those solved; and whether the target is met (see the docstring)."""
    _require_read(actor)
    local = (now or clock.now()).astimezone(SHANGHAI)
    first = _shift(local.year, local.month, -(months - 1))
    baseline: tuple[int, int] | None = None
    if problem.baseline_month:
        baseline = (int(problem.baseline_month[:4]), int(problem.baseline_month[5:]))
    start_ym = min(first, baseline) if baseline else first
    start = _month_start(*start_ym)
    end = _month_start(*_shift(local.year, local.month, 1))
    query = (
        select(
            Case.created_at,
            Case.category,
            Case.title,
            Order.content,
            Order.solved,
            Order.called_back_at,
        )
        .join(Order, Order.id == Case.id)
        .where(
            Case.case_type == "hotline",
            Case.created_at >= start,
            Case.created_at < end,
            Case.status != "merged",
        )
    )
    if problem.category_codes:
        query = query.where(Case.category.in_(list(problem.category_codes)))
    if problem.keywords:
        firsts = {k.split("+")[0] for k in problem.keywords}
        query = query.where(
            or_(
                *(Case.title.contains(w, autoescape=True) for w in firsts),
                *(Order.content.contains(w, autoescape=True) for w in firsts),
            )
        )
    if not repository.is_city_wide(actor):
        scope = actor.scope_path or "\0"
        query = query.where(
            exists().where(Unit.id == Order.location_unit_id, Unit.path.startswith(scope))
        )
    figures: dict[str, MonthFigures] = {}
    for at, category, title, content, solved, called_back_at in session.execute(query).all():
        if not matches(problem, category, f"{title}\n{content}"):
            continue
        key = at.astimezone(SHANGHAI).strftime("%Y-%m")
        row = figures.setdefault(key, MonthFigures(key))
        row.volume += 1
        if solved is not None and called_back_at is not None:
            row.called_back += 1
            row.solved += int(bool(solved))
    listed = []
    for k in range(months):
        y, m = _shift(first[0], first[1], k)
        key = f"{y:04d}-{m:02d}"
        listed.append(figures.get(key, MonthFigures(key)))
    jy, jm = _shift(local.year, local.month, -1)
    judged_key = f"{jy:04d}-{jm:02d}"
    judged = figures.get(judged_key, MonthFigures(judged_key))
    met: bool | None
    value: float | None
    if problem.target_kind == "resolution_rate":
        value = judged.resolution_rate
        met = None if value is None else value >= problem.target_value - 1e-9
    else:
        value = float(judged.volume)
        if problem.baseline_month is None:
            met = None
        else:
            base = figures.get(problem.baseline_month, MonthFigures(problem.baseline_month))
            met = (
                None
                if base.volume == 0
                else judged.volume <= (1 - problem.target_value) * base.volume + 1e-9
            )
    return Trend(listed, judged_key, met, value)


def summaries(
    session: Session, actor: Principal, problems: Sequence[HardProblem], now: datetime | None = None
) -> dict[uuid.UUID, Trend]:
    return {p.id: trend(session, actor, p, months=6, now=now) for p in problems}
