"""The two scans that raise early warnings.

* ``on_intake``: at registration (every live channel; never the historical import) the
  order's title and content go through the extreme-event word list (``extreme.scan``);
  a hit raises an immediate warning linked to the order, in the registration's own
  transaction, and a timeline note "触发舆情预警" on the order. A miss costs the scan only
  (no statement).
* ``scan_spikes``: every five minutes (``zhengshu.tasks``) the orders of the last weeks
  are counted per category x town: the seasonal baseline (hour-of-week profile x the
  key's level, ``spikes.SpikeDetector``) is learnt from the history before the last two
  hours, summed by the database (per key, per hour), and the orders of the last two hours
  are replayed through the detector. A breakout raises a
  spike warning, once per key and episode: a key whose last warning's window ended
  within the detector's cool-down of the new onset is the same burst.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from zhengshu.casework import engine
from zhengshu.casework.models import Case
from zhengshu.kernel import clock
from zhengshu.kernel.authz import Principal, system_principal
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.insight import extreme
from zhengshu.modules.hotline.insight.alert_models import Alert
from zhengshu.modules.hotline.insight.alerts import AlertKind, NewAlert, raise_alert
from zhengshu.modules.hotline.insight.spikes import SEVERITY_LABELS, SpikeDetector
from zhengshu.modules.hotline.models import Order
from zhengshu.org.models import Unit

LOCAL = ZoneInfo("Asia/Shanghai")
SCANNER = "舆情预警"
HISTORY_DAYS = 28
NO_TOWN = "-"


def _city(session: Session) -> str:
    root = session.scalar(select(Unit).where(Unit.depth == 0).limit(1))
    name = root.name if root else ""
    return name[:-1] if name.endswith("市") and len(name) > 1 else name


def town_of(session: Session, unit_id: uuid.UUID | None) -> Unit | None:
    """The town / street / park a unit lies in (itself when it is one)."""
    if unit_id is None:
        return None
    unit = session.get(Unit, unit_id)
    if unit is None or unit.depth < 1:
        return None
    if unit.depth == 1:
        return unit
    parts = [p for p in unit.path.split("/") if p]
    try:
        return session.get(Unit, uuid.UUID(parts[1]))
    except (IndexError, ValueError):
        return None


# --- extreme events at intake --------------------------------------------------------------


def word_list(path: Path | None) -> Path | None:
    """A city's own word list when present, else the built-in one (None)."""
    return path if path is not None and path.is_file() else None


def on_intake(
    session: Session,
    case: Case,
    order: Order,
    *,
    words: Path | None = None,
    actor: Principal | None = None,
) -> Alert | None:
    """Scan a new order's title and content; a hit raises one extreme warning linked to
    it (never twice for one order) and notes it on the order's timeline."""
    hits = extreme.scan(f"{case.title}\n{order.content}", word_list(words))
    if not hits:
        return None
    scanner = actor or system_principal(SCANNER)
    rules = extreme.load_rules(word_list(words))
    labels = rules.labels
    top = hits[0]
    terms = "、".join(dict.fromkeys(h.term for h in hits))
    kinds = "、".join(dict.fromkeys(labels.get(h.kind, h.kind) for h in hits))
    town = town_of(session, order.location_unit_id)
    detail = "\n".join(f"【{labels.get(h.kind, h.kind)}·{h.term}】{h.snippet}" for h in hits)
    alert = raise_alert(
        session,
        scanner,
        NewAlert(
            kind=AlertKind.EXTREME,
            level=top.level,
            title=f"{kinds}：{case.title}（{terms}）",
            detail=f"工单 {case.number}" + (f"，{town.name}" if town else "") + f"\n{detail}",
            key=" ".join(f"{h.kind}:{h.term}" for h in hits),
            dedupe_key=f"extreme:{case.id}",
            category=case.category,
            town=town,
            case_id=case.id,
            matches=[
                {
                    "kind": h.kind,
                    "label": labels.get(h.kind, h.kind),
                    "term": h.term,
                    "level": h.level,
                    "snippet": h.snippet,
                }
                for h in hits
            ],
        ),
        city=_city(session),
    )
    if alert is not None:
        engine.add_note(
            session,
            scanner,
            case,
            action="alert_raised",
            label="触发舆情预警",
            note=f"{kinds}（{terms}），已推送值班督办与领导",
            data={"alert_id": str(alert.id), "terms": [h.term for h in hits]},
        )
    return alert


# --- spikes --------------------------------------------------------------------------------


def _local(at: datetime) -> datetime:
    """Aware (UTC) -> naive Beijing wall-clock, as the detector reads time."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(LOCAL).replace(tzinfo=None)


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=LOCAL).astimezone(UTC)


@dataclass(frozen=True)
class SpikeScan:
    history: int
    recent: int
    found: int
    raised: list[Alert]


def _town_of_path(path: str | None) -> str | None:
    """The town segment of a unit's materialized path (city / town / village)."""
    parts = [p for p in (path or "").split("/") if p]
    return parts[1] if len(parts) >= 2 else None


def _hour_bucket(session: Session) -> ColumnElement[Any]:
    """The UTC hour an order was registered in (Beijing time is a whole number of hours
    off UTC, so a UTC hour is one local hour)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", Case.created_at)
    return func.strftime("%Y-%m-%d %H:00:00", Case.created_at)


def _as_datetime(value: Any) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _key(category: str | None, town: str | None) -> str:
    return f"{category or 'other'}|{town or NO_TOWN}"


def scan_spikes(
    session: Session,
    now: datetime | None = None,
    *,
    history_days: int = HISTORY_DAYS,
    detector: SpikeDetector | None = None,
) -> SpikeScan:
    """Count orders per category x town, learn the seasonal baseline from the
    ``history_days`` before the detector's longest window, replay that window and raise
    a spike warning per new burst. ``now`` is aware (default: the clock)."""
    now = now or clock.now()
    det = detector or SpikeDetector()
    recent_minutes = max(det.windows)
    since = now - timedelta(days=history_days)
    split = now - timedelta(minutes=recent_minutes)
    place = Unit.__table__.alias("place")
    in_window = (Case.case_type == "hotline", Case.created_at <= now)
    # The history is summed by the database (per key, and per hour over all keys): a
    # month at city volume is hundreds of thousands of orders, the sums a few thousand rows.
    per_key: dict[Hashable, int] = {}
    for category, path, n in session.execute(
        select(Case.category, place.c.path, func.count())
        .join(Order, Order.id == Case.id)
        .outerjoin(place, place.c.id == Order.location_unit_id)
        .where(*in_window, Case.created_at >= since, Case.created_at < split)
        .group_by(Case.category, place.c.path)
    ).all():
        key = _key(category, _town_of_path(path))
        per_key[key] = per_key.get(key, 0) + int(n)
    per_hour: dict[datetime, int] = {}
    hour = _hour_bucket(session)
    for bucket, n in session.execute(
        select(hour, func.count())
        .where(*in_window, Case.created_at >= since, Case.created_at < split)
        .group_by(hour)
    ).all():
        local = _local(_as_datetime(bucket))
        per_hour[local] = per_hour.get(local, 0) + int(n)
    recent = [
        (_key(category, _town_of_path(path)), _local(created_at))
        for created_at, category, path in session.execute(
            select(Case.created_at, Case.category, place.c.path)
            .join(Order, Order.id == Case.id)
            .outerjoin(place, place.c.id == Order.location_unit_id)
            .where(*in_window, Case.created_at >= split)
            .order_by(Case.created_at)
        ).all()
    ]
    det.fit_counts(per_key, per_hour)
    warnings = det.run(recent)
    local_now = _local(now)
    raised: list[Alert] = []
    scanner = system_principal(SCANNER)
    names = {code: info.name for code, info in categories().items()}
    city = _city(session) if warnings else ""
    for warning in warnings:
        key = str(warning.key)
        onset = _aware(warning.onset)
        if _same_episode(session, key, onset, det.cooldown):
            continue
        category, _, town_hex = key.partition("|")
        town = session.get(Unit, uuid.UUID(town_hex)) if town_hex != NO_TOWN else None
        where = town.name if town else "未定位镇街"
        label = names.get(category, category)
        # The detector fires on the order that crossed the line; by the time the scan
        # runs the burst may have gone on: the warning reports it from onset to now.
        so_far = sum(1 for k, at in recent if k == warning.key and at >= warning.onset)
        expected = round(det.expected(warning.key, warning.onset, local_now), 2)
        excess = so_far - expected
        level = max(warning.severity, 3 if excess >= 50 else 2 if excess >= 20 else 1)
        alert = raise_alert(
            session,
            scanner,
            NewAlert(
                kind=AlertKind.SPIKE,
                level=level,
                title=(
                    f"话务突增：{where}“{label}”类诉求自 {warning.onset:%H:%M} 起 "
                    f"{so_far} 件（常态约 {expected:g} 件）"
                ),
                detail=(
                    f"{where}“{label}”类诉求自 {warning.onset:%m-%d %H:%M} 起明显增多，"
                    f"至 {local_now:%H:%M} 共 {so_far} 件，按同时段常态应约 {expected:g} 件。"
                    f"{warning.detected_at:%H:%M} 触发：{warning.window_minutes} 分钟内 "
                    f"{warning.observed} 件，常态约 {warning.expected:g} 件"
                    f"（尾部概率 {warning.p_value:.1e}）；级别：{SEVERITY_LABELS[level]}。"
                ),
                key=key,
                dedupe_key=f"spike:{key}:{warning.onset:%Y%m%d%H%M}",
                category=category,
                town=town,
                window_start=onset,
                window_end=now,
                window_minutes=warning.window_minutes,
                observed=so_far,
                expected=expected,
                p_value=warning.p_value,
            ),
            city=city,
        )
        if alert is not None:
            raised.append(alert)
    return SpikeScan(
        history=sum(per_key.values()), recent=len(recent), found=len(warnings), raised=raised
    )


def _same_episode(session: Session, key: str, onset: datetime, cooldown: float) -> bool:
    """A warning on ``key`` whose window ended within the cool-down before ``onset`` (or
    after it) reports the same burst."""
    last = session.scalar(
        select(Alert.window_end)
        .where(Alert.kind == AlertKind.SPIKE.value, Alert.key == key)
        .order_by(Alert.window_end.desc())
        .limit(1)
    )
    if last is None:
        return False
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return last >= onset - timedelta(minutes=cooldown)


def scheduled(session: Session) -> None:
    """The five-minute job."""
    scan_spikes(session)
