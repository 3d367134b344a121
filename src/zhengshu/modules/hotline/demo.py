"""A demo order history: weeks of 12345 orders driven through the real service.

``zhengshu seed orders`` (and ``zhengshu up`` on a database without orders) fills the demo
city with orders that went round the real closed loop, so the console's queues, the
supervisor's board, the KPIs, notices, hot issues, warnings and the leaders' dashboard have
something to show. Nothing is written behind the service's back: every order is registered
by ``service.register_order`` and moved by ``service.act`` with the clock set to the moment
each step happens, so time limits, yellow / red lights, timelines and audit rows are exactly
what live use would leave.

The texts come from ``demo_orders.yaml`` (written for the demo). The history is random but
reproducible (a fixed seed): a weekly and daily rhythm, most orders handled on time, some
signed for or replied late, returns and re-dispatches, reworks after unsatisfied callbacks,
direct answers at intake, emergencies; a few recurring problems at one place (hot issues)
and two texts that raise an immediate warning; the hard-problem list gets its two
examples. Steps that would fall after "now" are left undone, so the last days' orders are
still open at every stage.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhengshu.casework import engine
from zhengshu.casework.models import Case
from zhengshu.kernel import clock
from zhengshu.kernel.authz import Principal, system_principal
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.errors import DomainError
from zhengshu.modules.hotline import service
from zhengshu.modules.hotline.enums import Channel, RequestType, Satisfaction, Urgency
from zhengshu.modules.hotline.insight import hard
from zhengshu.modules.hotline.schemas import ActionRequest, OrderCreate
from zhengshu.modules.hotline.service import HotlineConfig
from zhengshu.org.models import Unit
from zhengshu.org.roles import TOWN_LEVEL, VILLAGE_LEVEL, UnitKind

LOCAL = ZoneInfo("Asia/Shanghai")
SURNAMES = "陈李张王刘黄林何罗梁郑谢叶钟邓莫卢蔡袁"
ROADS = ["东城大道", "鸿福路", "莞太路", "环城路", "新城路", "石龙大道", "商业街", "人民路"]
ESTATES = ["碧桂园", "万科城", "华润城", "金域华府", "星河城", "海德广场", "翡翠山", "富丽花园"]
CHANNEL_WEIGHTS = {
    Channel.PHONE: 62,
    Channel.WEB: 10,
    Channel.APP: 16,
    Channel.MESSAGE_BOARD: 9,
    Channel.POLICE_110: 3,
}
SATISFACTION_WEIGHTS = {
    Satisfaction.VERY_SATISFIED: 45,
    Satisfaction.SATISFIED: 35,
    Satisfaction.BASICALLY_SATISFIED: 10,
    Satisfaction.DISSATISFIED: 7,
    Satisfaction.VERY_DISSATISFIED: 3,
}
# Orders per hour of a local day, relative (the hotline's daily rhythm).
HOURLY = [1, 0, 0, 0, 0, 1, 2, 5, 9, 12, 12, 10, 7, 8, 11, 11, 10, 8, 6, 6, 5, 4, 3, 2]


@dataclass
class DemoReport:
    orders: int = 0
    actions: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


@cache
def _templates() -> dict[str, Any]:
    text = resources.files("zhengshu.modules.hotline").joinpath("demo_orders.yaml")
    loaded: dict[str, Any] = yaml.safe_load(text.read_text("utf-8"))
    return loaded


@contextmanager
def _clock_at(start: datetime) -> Iterator[FrozenClock]:
    frozen = FrozenClock(start)
    previous = clock.use_clock(frozen)
    try:
        yield frozen
    finally:
        clock.use_clock(previous)


@dataclass(frozen=True)
class _Place:
    town: Unit
    villages: tuple[Unit, ...]


def _places(session: Session) -> list[_Place]:
    units = session.execute(select(Unit).where(Unit.active.is_(True))).scalars().all()
    towns = [u for u in units if UnitKind(u.kind) in TOWN_LEVEL]
    villages: dict[Any, list[Unit]] = {}
    for unit in units:
        if UnitKind(unit.kind) in VILLAGE_LEVEL and unit.parent_id is not None:
            villages.setdefault(unit.parent_id, []).append(unit)
    return [_Place(t, tuple(villages.get(t.id, ()))) for t in sorted(towns, key=lambda u: u.code)]


@dataclass
class _Plan:
    """One order to be: when, what, and how its handling will go."""

    at: datetime
    category: str
    request_type: RequestType
    title: str
    text: str
    place: _Place
    village: Unit | None
    urgency: Urgency = Urgency.NORMAL
    phone: str = ""
    name: str = ""
    channel: Channel = Channel.PHONE


class _Simulator:
    def __init__(
        self, session: Session, config: HotlineConfig, rng: random.Random, now: datetime
    ) -> None:
        self.session, self.config, self.rng, self.now = session, config, rng, now
        self.actors: dict[str, Principal] = {
            role: system_principal(name)
            for role, name in {
                "calltaker": "话务员（演示）",
                "dispatcher": "派单员（演示）",
                "handler": "承办人（演示）",
                "callback": "回访员（演示）",
            }.items()
        }
        self.report = DemoReport()

    def _phone(self) -> str:
        return "1" + self.rng.choice("3578") + "".join(self.rng.choices("0123456789", k=9))

    def _pick(self, weights: dict[Any, int]) -> Any:
        return self.rng.choices(list(weights), weights=list(weights.values()))[0]

    def _act(self, order_id: Any, who: str, action: str, **body: Any) -> bool:
        try:
            service.act(
                self.session,
                self.actors[who],
                config=self.config,
                order_id=order_id,
                action=action,
                request=ActionRequest(**body),
            )
        except DomainError:
            return False  # e.g. already dispatched by smart dispatch
        self.report.actions += 1
        return True

    def run(self, plan: _Plan, frozen: FrozenClock) -> None:
        frozen.set(plan.at)
        data = OrderCreate(
            channel=plan.channel,
            requester_name=plan.name,
            requester_phone=plan.phone,
            address=f"{plan.place.town.name}{plan.village.name if plan.village else ''}",
            location_unit_id=(plan.village or plan.place.town).id,
            content=plan.text,
            title=plan.title,
            request_type=plan.request_type,
            category=plan.category,
            urgency=plan.urgency,
        )
        case, _order = service.register_order(
            self.session, self.actors["calltaker"], config=self.config, data=data
        )
        self.report.orders += 1
        self._handle(case, plan, frozen)

    def _at(self, frozen: FrozenClock, delta: timedelta) -> bool:
        """Move the clock on; False when that moment is still to come."""
        target = frozen.now() + delta
        if target > self.now:
            return False
        frozen.set(target)
        return True

    def _minutes(self, low: float, high: float) -> timedelta:
        return timedelta(minutes=self.rng.uniform(low, high))

    def _handle(self, case: Case, plan: _Plan, frozen: FrozenClock) -> None:
        rng, oid = self.rng, case.id
        if plan.request_type is RequestType.CONSULTATION and rng.random() < 0.3:
            if self._at(frozen, self._minutes(2, 8)):
                self._act(oid, "calltaker", "answer_directly", note="已依据知识库直接答复来电人。")
            return
        emergency = plan.urgency is Urgency.EMERGENCY
        if not self._at(frozen, self._minutes(2, 4) if emergency else self._minutes(4, 28)):
            return
        default = service.default_unit(self.session, plan.category)
        lead = plan.place.town if default is None or rng.random() < 0.6 else default
        if case.status == "registered":
            self._act(oid, "dispatcher", "dispatch", unit_id=lead.id, note="按属地和职责派单")
        returned = (
            rng.random() < 0.04
            and self._at(frozen, self._minutes(20, 90))
            and self._act(oid, "handler", "return_order", note="不属于本单位职责，请改派")
        )
        if returned:
            other = plan.place.town if lead is not plan.place.town else default
            if not self._at(frozen, self._minutes(10, 60)):
                return
            self._act(oid, "dispatcher", "redispatch", unit_id=(other or lead).id, note="改派")
        late_sign = rng.random() < 0.1
        sign = self._minutes(150, 400) if late_sign else self._minutes(5, 90)
        if not self._at(frozen, self._minutes(3, 12) if emergency else sign):
            return
        self._act(oid, "handler", "sign_for")
        for attempt in range(3):
            late_reply = rng.random() < 0.08
            days = rng.uniform(7, 10) if late_reply else rng.uniform(0.3, 4.5)
            if emergency:
                days = rng.uniform(0.05, 0.15)
            if not self._at(frozen, timedelta(days=days)):
                return
            self._act(oid, "handler", "reply", note="已现场核实并处理，结果已告知诉求人。")
            if not self._at(frozen, self._minutes(120, 1200)):
                return
            happy = attempt == 2 or rng.random() < 0.86
            if happy:
                satisfaction = self._pick(
                    {k: v for k, v in SATISFACTION_WEIGHTS.items() if k.counts_as_satisfied}
                )
                self._act(oid, "callback", "callback", solved=True, satisfaction=satisfaction)
                return
            satisfaction = self._pick(SATISFACTION_WEIGHTS)
            solved = not satisfaction.counts_as_satisfied and rng.random() < 0.3
            self._act(
                oid,
                "callback",
                "callback",
                solved=solved,
                satisfaction=satisfaction,
                note="诉求人表示问题未解决，要求重办。",
            )


def _fill(template: str, rng: random.Random, place: _Place, village: Unit | None) -> str:
    return template.format(
        town=place.town.name,
        village=village.name if village else "",
        road=rng.choice(ROADS),
        estate=rng.choice(ESTATES),
    )


def _plans(
    rng: random.Random, places: list[_Place], *, start: datetime, days: int, per_day: int
) -> list[_Plan]:
    data = _templates()
    plans: list[_Plan] = []
    weights = [t["weight"] for t in data["templates"]]
    for day in range(days):
        local_day = (start + timedelta(days=day)).astimezone(LOCAL)
        volume = per_day * (0.6 if local_day.weekday() >= 5 else 1.0)
        count = max(0, round(rng.gauss(volume, volume**0.5)))
        for _ in range(count):
            hour = rng.choices(range(24), weights=HOURLY)[0]
            at = local_day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))
            t = rng.choices(data["templates"], weights=weights)[0]
            place = rng.choice(places)
            village = rng.choice(place.villages) if place.villages else None
            plans.append(
                _Plan(
                    at=at,
                    category=t["category"],
                    request_type=RequestType(t["type"]),
                    title=_fill(t["title"], rng, place, village),
                    text=_fill(t["text"], rng, place, village),
                    place=place,
                    village=village,
                    urgency=Urgency.URGENT if rng.random() < 0.05 else Urgency.NORMAL,
                )
            )
    by_name = {p.town.name: p for p in places}
    last = start + timedelta(days=days)
    for spec in data["hot"]:
        hot_place = by_name.get(spec["town"])
        if hot_place is None:
            continue
        first = last - timedelta(days=spec["days"] + rng.randrange(0, 5))
        for day in range(spec["days"]):
            for _ in range(spec["per_day"] + rng.randrange(0, 2)):
                at = (first + timedelta(days=day)).astimezone(LOCAL)
                at = at.replace(hour=rng.choice([7, 8, 21, 22, 23]), minute=rng.randrange(60))
                plans.append(
                    _Plan(
                        at=at,
                        category=spec["category"],
                        request_type=RequestType(spec["type"]),
                        title=spec["title"],
                        text=spec["text"],
                        place=hot_place,
                        village=None,
                    )
                )
    for i, spec in enumerate(data["extreme"]):
        extreme_place = by_name.get(spec["town"])
        if extreme_place is None:
            continue
        plans.append(
            _Plan(
                at=last - timedelta(hours=5 + 20 * i),
                category=spec["category"],
                request_type=RequestType(spec["type"]),
                title=spec["title"],
                text=spec["text"],
                place=extreme_place,
                village=None,
                urgency=Urgency.EMERGENCY,
            )
        )
    plans.sort(key=lambda p: p.at)
    return plans


def has_orders(session: Session) -> bool:
    return session.execute(select(func.count()).select_from(Case)).scalar_one() > 0


def generate(
    session_scope: Callable[[], Any],
    config: HotlineConfig,
    *,
    days: int = 21,
    per_day: int = 15,
    seed: int = 2024,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DemoReport:
    """Register and handle the demo history ending at ``now``. ``session_scope()`` gives a
    context manager yielding a session that commits on exit (one transaction per day)."""
    now = now or clock.now()
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not a secret
    end_local = now.astimezone(LOCAL).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end_local - timedelta(days=days - 1)
    with session_scope() as session:
        places = [p for p in _places(session) if p.villages] or _places(session)
    plans = [p for p in _plans(rng, places, start=start, days=days, per_day=per_day) if p.at < now]
    for plan in plans:
        plan.name = rng.choice(SURNAMES) + rng.choice(["先生", "女士"])
        plan.phone = f"13{rng.randrange(10**9):09d}"
        plan.channel = rng.choices(list(CHANNEL_WEIGHTS), weights=list(CHANNEL_WEIGHTS.values()))[0]
    report = DemoReport()
    done = 0
    with _clock_at(start) as frozen:
        for day in sorted({p.at.astimezone(LOCAL).date() for p in plans}):
            with session_scope() as session:
                sim = _Simulator(session, config, rng, now)
                for plan in (p for p in plans if p.at.astimezone(LOCAL).date() == day):
                    sim.run(plan, frozen)
                report.orders += sim.report.orders
                report.actions += sim.report.actions
            done += 1
            if progress:
                progress(done, len({p.at.astimezone(LOCAL).date() for p in plans}))
    # The lights of the orders still open, as the worker's sweep would have left them.
    with _clock_at(now), session_scope() as session:
        calendar = config.calendar(session)
        while True:
            swept = engine.sweep(session, system_principal("时限巡检"), calendar=calendar)
            if not (swept.yellow or swept.red or swept.escalated):
                break
        # The hard-problem list's two examples, so its page has trends to show.
        hard.load_examples(session, system_principal("演示数据"))
        rows = session.execute(select(Case.status, func.count()).group_by(Case.status)).all()
        report.by_status = {str(status): int(n) for status, n in rows}
    return report
