"""Exact stage deadlines of work orders over the API, on the real 2026 calendar.

Office hours are 08:30-12:00 and 14:00-17:30 Beijing time (7 working hours a day).
National Day 2026: 1-7 October off, Saturday 10 October a make-up working day. The clock
is frozen and moved by hand; every expected instant is worked out in the comment beside it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from tests.conftest import frozen_at
from tests.modules.hotline.test_transitions import DONGCHENG, GANGBEI, Api, Desk
from zhengshu.casework.models import Case
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.calendar import SHANGHAI, WorkCalendar, parse_schedule
from zhengshu.kernel.calendar_store import import_schedule
from zhengshu.kernel.clock import FrozenClock

needs_unknown_2027 = pytest.mark.skipif(
    WorkCalendar().is_known_year(2027),
    reason="chinesecalendar now knows 2027: move these cases to the next unpublished year",
)


def bj(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def z(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> str:
    """The API's rendering (UTC, ``Z``) of a Beijing time."""
    return bj(year, month, day, hour, minute).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(bj(2026, 9, 30, 9, 0))  # Wednesday


@pytest.fixture
def desk(api: Api, db: Session, frozen: FrozenClock) -> Desk:
    return Desk(api, db)


def clock_of(order: dict) -> tuple[str | None, str | None]:
    return order["due_at"], order["warn_at"]


def test_an_order_handled_across_national_day(desk: Desk, frozen: FrozenClock) -> None:
    order = desk.new_order()
    # Dispatch within 30 minutes; yellow after 24.
    assert clock_of(order) == (z(2026, 9, 30, 9, 30), z(2026, 9, 30, 9, 24))
    assert order["due_provisional"] is False

    frozen.set(bj(2026, 9, 30, 17, 0))
    order = desk.act("dispatcher", order, "dispatch", unit_id=desk.unit(DONGCHENG))
    # Sign for within 2 working hours: 30 min on Wed 30 Sep, 1.5h from 08:30 on Thu 8 Oct.
    # Yellow after 96 min: 30 + 66 -> 09:36.
    assert clock_of(order) == (z(2026, 10, 8, 10, 0), z(2026, 10, 8, 9, 36))

    frozen.set(bj(2026, 10, 9, 10, 0))  # Friday
    order = desk.act("dc.handler", order, "sign_for")
    # Handle within 5 working days from the next: Sat 10 (make-up), Mon 12 ... Thu 15 Oct.
    # 40.5 working hours from Fri 10:00 (5.5h + 5 x 7h); yellow after 32h24m: 5.5 + 7 + 7
    # + 7 by Tue 13, then 5h54m on Wed 14 Oct: 3.5h morning, 2h24m from 14:00 -> 16:24.
    assert clock_of(order) == (z(2026, 10, 15, 17, 30), z(2026, 10, 14, 16, 24))

    frozen.set(bj(2026, 10, 10, 11, 0))  # the make-up Saturday
    order = desk.act("dc.handler", order, "reply", note="已清理楼道。")
    # Call back within 2 working days: Sunday off, Mon 12 and Tue 13 October.
    # 18.5h (4.5h on Saturday + 14h); yellow after 14h48m: 4.5 + 7 -> 3h18m on the 13th.
    assert clock_of(order) == (z(2026, 10, 13, 17, 30), z(2026, 10, 13, 11, 48))

    frozen.set(bj(2026, 10, 12, 9, 0))
    order = desk.act("callback", order, "callback", solved=True, satisfaction="satisfied")
    assert order["status"] == "closed"
    assert clock_of(order) == (None, None)
    assert order["closed_at"] == z(2026, 10, 12, 9, 0)


def test_an_approved_extension_moves_the_deadline(desk: Desk, frozen: FrozenClock) -> None:
    order = desk.bring("handling")
    # Signed for at 09:00 on Wed 30 Sep: 8, 9, 10, 12, 13 October.
    assert clock_of(order) == (z(2026, 10, 13, 17, 30), z(2026, 10, 12, 16, 12))

    frozen.set(bj(2026, 10, 12, 10, 0))
    order = desk.act("dc.handler", order, "request_extension", extension="3wd", note="需协调物业。")
    assert order["status"] == "extension_requested"
    assert order["due_at"] == z(2026, 10, 13, 17, 30)  # unchanged until approved

    frozen.set(bj(2026, 10, 12, 11, 0))
    order = desk.act("dispatcher", order, "approve_extension")
    assert order["status"] == "handling"
    # Three working days more: 14, 15, 16 October, closing at 17:30.
    assert order["due_at"] == z(2026, 10, 16, 17, 30)
    assert z(2026, 10, 12, 11, 0) < order["warn_at"] < order["due_at"]
    assert order["warning_level"] == "none"
    approved = desk.timeline(order)[-1]
    assert (approved["action"], approved["data"]) == (
        "approve_extension",
        {"extension": "3wd", "label": "3个工作日"},
    )


def test_the_dispatcher_may_approve_a_shorter_extension(desk: Desk) -> None:
    order = desk.bring("extension_requested")  # asked for 3wd
    order = desk.act("dispatcher", order, "approve_extension", extension="1wd")
    assert order["due_at"] == z(2026, 10, 14, 17, 30)  # 13 Oct + 1 working day


def test_an_extension_in_working_hours(desk: Desk) -> None:
    order = desk.bring("handling")
    order = desk.act("dc.handler", order, "request_extension", extension="4wh", note="待复查")
    order = desk.act("dispatcher", order, "approve_extension")
    # 13 Oct 17:30 + 4 working hours: Wed 14 Oct 08:30-12:00 and 14:00-14:30.
    assert order["due_at"] == z(2026, 10, 14, 14, 30)


def test_a_refused_extension_keeps_the_deadline(desk: Desk) -> None:
    order = desk.bring("extension_requested")
    order = desk.act("dispatcher", order, "refuse_extension", note="时限内可以办结。")
    assert order["status"] == "handling"
    assert clock_of(order) == (z(2026, 10, 13, 17, 30), z(2026, 10, 12, 16, 12))


def test_an_extension_leaves_a_yellow_window_before_the_new_deadline(
    desk: Desk, frozen: FrozenClock
) -> None:
    # An urgent praise: no request-type limits, so */urgent handle 1wd.
    order = desk.bring("handling", request_type="praise", urgency="urgent")
    # Due Thu 8 Oct 17:30; 13.5h in all (6.5h on 30 Sep + 7h); yellow after 10h48m -> 14:48.
    assert clock_of(order) == (z(2026, 10, 8, 17, 30), z(2026, 10, 8, 14, 48))
    frozen.set(bj(2026, 10, 8, 9, 0))
    order = desk.act("dc.handler", order, "request_extension", extension="3wd", note="需协调")
    order = desk.act("dispatcher", order, "approve_extension")
    assert order["due_at"] == z(2026, 10, 12, 17, 30)  # 9, 10 (make-up), 12 October
    assert order["warn_at"] < order["due_at"]


def test_passing_down_does_not_give_the_unit_a_fresh_handling_clock(
    desk: Desk, frozen: FrozenClock
) -> None:
    order = desk.bring("handling")
    assert order["due_at"] == z(2026, 10, 13, 17, 30)
    frozen.set(bj(2026, 10, 13, 16, 0))  # 90 minutes before the deadline
    order = desk.act("dc.leader", order, "pass_down", unit_id=desk.unit(GANGBEI))
    # The community works inside the street's time: same status, same deadline.
    assert order["status"] == "handling"
    assert order["due_at"] == z(2026, 10, 13, 17, 30)


def test_a_suspension_shifts_the_deadline_by_the_paused_working_time(
    desk: Desk, db: Session, frozen: FrozenClock
) -> None:
    order = desk.bring("handling")
    assert clock_of(order) == (z(2026, 10, 13, 17, 30), z(2026, 10, 12, 16, 12))

    paused_at = bj(2026, 10, 8, 10, 0)  # Thursday, the second working day of handling
    frozen.set(paused_at)
    order = desk.act("dispatcher", order, "suspend", note="诉求人出差，暂无法核实。")
    assert order["status"] == "suspended"
    assert clock_of(order) == (None, None)
    case = db.get(Case, uuid.UUID(order["id"]))
    assert case is not None
    db.refresh(case)
    # Left: 5.5h on the 8th + 9, 10, 12, 13 October = 33.5 working hours.
    assert case.paused_remaining_seconds == 33 * 3600 + 1800
    assert case.stage == "handle"

    resumed_at = bj(2026, 10, 11, 10, 0)  # Sunday, three calendar days later
    frozen.set(resumed_at)
    order = desk.act("dispatcher", order, "resume")
    assert order["status"] == "handling"
    # Paused: 5.5h (Thu 8) + 7h (Fri 9) + 7h (Sat 10, make-up) = 19.5 working hours.
    calendar = WorkCalendar()
    paused = calendar.working_time_between(paused_at, resumed_at).value
    assert paused.total_seconds() == 19.5 * 3600
    # 33.5h from Mon 12 Oct 08:30: 7 + 7 + 7 (12-14) + 7 (15) + 5.5h on Fri 16 -> 16:00,
    # the old 13 Oct 17:30 moved by exactly 19.5 working hours.
    assert order["due_at"] == z(2026, 10, 16, 16, 0)
    assert (
        bj(2026, 10, 16, 16, 0) == calendar.add_working_time(bj(2026, 10, 13, 17, 30), paused).value
    )
    # Yellow when 20% of the 41.5h stage (8.3h) is left: 25h12m after Mon 08:30 -> Thu 15
    # Oct 14:42, the old 12 Oct 16:12 moved by the same 19.5 working hours.
    assert order["warn_at"] == z(2026, 10, 15, 14, 42)
    assert (
        bj(2026, 10, 15, 14, 42)
        == calendar.add_working_time(bj(2026, 10, 12, 16, 12), paused).value
    )
    db.refresh(case)
    assert case.paused_remaining_seconds is None


def test_an_emergency_help_request_runs_on_minutes(desk: Desk, frozen: FrozenClock) -> None:
    frozen.set(bj(2026, 9, 30, 10, 0))
    order = desk.new_order(request_type="help", urgency="emergency", content="老人在家摔倒。")
    # help/emergency: dispatch 5m (yellow at 4), sign_for 15m (yellow at 12), handle 4wh.
    assert clock_of(order) == (z(2026, 9, 30, 10, 5), z(2026, 9, 30, 10, 4))
    frozen.set(bj(2026, 9, 30, 10, 2))
    order = desk.act("dispatcher", order, "dispatch", unit_id=desk.unit(DONGCHENG))
    assert clock_of(order) == (z(2026, 9, 30, 10, 17), z(2026, 9, 30, 10, 14))
    frozen.set(bj(2026, 9, 30, 10, 10))
    order = desk.act("dc.handler", order, "sign_for")
    # 4 working hours from 10:10: 1h50m to noon, 2h10m from 14:00 -> 16:10.
    # Yellow after 3h12m: 1h50m + 1h22m -> 15:22.
    assert clock_of(order) == (z(2026, 9, 30, 16, 10), z(2026, 9, 30, 15, 22))


def test_an_emergency_at_night_on_a_holiday_does_not_wait(desk: Desk, frozen: FrozenClock) -> None:
    frozen.set(bj(2026, 10, 1, 2, 0))  # 02:00 on National Day
    order = desk.new_order(request_type="help", urgency="emergency", content="燃气泄漏。")
    assert clock_of(order) == (z(2026, 10, 1, 2, 5), z(2026, 10, 1, 2, 4))
    frozen.set(bj(2026, 10, 1, 2, 3))
    order = desk.act("dispatcher", order, "dispatch", unit_id=desk.unit(DONGCHENG))
    assert clock_of(order) == (z(2026, 10, 1, 2, 18), z(2026, 10, 1, 2, 15))
    frozen.set(bj(2026, 10, 1, 2, 10))
    order = desk.act("dc.handler", order, "sign_for")
    # Handling counts office hours: Thu 8 Oct 08:30 + 3.5h + 0.5h -> 14:30; yellow 11:42.
    assert clock_of(order) == (z(2026, 10, 8, 14, 30), z(2026, 10, 8, 11, 42))


def test_an_emergency_return_is_reviewed_within_an_hour(desk: Desk, frozen: FrozenClock) -> None:
    frozen.set(bj(2026, 9, 30, 10, 0))
    order = desk.new_order(request_type="help", urgency="emergency", content="老人在家摔倒。")
    order = desk.act("dispatcher", order, "dispatch", unit_id=desk.unit(DONGCHENG))
    frozen.set(bj(2026, 9, 30, 10, 5))
    order = desk.act("dc.handler", order, "return_order", note="不属本单位。")
    # No help limit names the review stage: */emergency gives 1wh, yellow after 48 min.
    assert clock_of(order) == (z(2026, 9, 30, 11, 5), z(2026, 9, 30, 10, 53))


def test_an_urgent_order_gets_the_urgent_limits(desk: Desk) -> None:
    order = desk.new_order(request_type="praise", urgency="urgent")
    assert order["due_at"] == z(2026, 9, 30, 9, 10)  # */urgent dispatch 10m
    order = desk.act("dispatcher", order, "dispatch", unit_id=desk.unit(DONGCHENG))
    assert order["due_at"] == z(2026, 9, 30, 10, 0)  # sign_for 1wh
    order = desk.act("dc.handler", order, "sign_for")
    assert order["due_at"] == z(2026, 10, 8, 17, 30)  # handle 1wd, after National Day


@needs_unknown_2027
def test_a_deadline_in_2027_is_provisional(desk: Desk, frozen: FrozenClock) -> None:
    frozen.set(bj(2026, 12, 28, 9, 0))  # Monday
    order = desk.new_order()
    assert (order["due_at"], order["due_provisional"]) == (z(2026, 12, 28, 9, 30), False)
    order = desk.act("dispatcher", order, "dispatch", unit_id=desk.unit(DONGCHENG))
    frozen.set(bj(2026, 12, 28, 10, 0))
    order = desk.act("dc.handler", order, "sign_for")
    # 29, 30, 31 December, then 2027 on the Monday-Friday guess: Fri 1 and Mon 4 January.
    assert (order["due_at"], order["due_provisional"]) == (z(2027, 1, 4, 17, 30), True)
    frozen.set(bj(2026, 12, 28, 11, 0))
    order = desk.act("dc.handler", order, "reply", note="已办理。")
    # Callback 2wd inside 2026 (29, 30 December): firm again.
    assert (order["due_at"], order["due_provisional"]) == (z(2026, 12, 30, 17, 30), False)


@needs_unknown_2027
def test_an_imported_2027_schedule_makes_the_deadline_firm(
    desk: Desk, db: Session, frozen: FrozenClock
) -> None:
    import_schedule(
        db,
        system_principal("测试"),
        year=2027,
        entries=parse_schedule("2027-01-01,休,元旦"),
    )
    db.commit()
    frozen.set(bj(2026, 12, 28, 10, 0))
    order = desk.bring("handling")
    # 29, 30, 31 December, (1 January off), Mon 4 and Tue 5 January.
    assert (order["due_at"], order["due_provisional"]) == (z(2027, 1, 5, 17, 30), False)
