"""Stage clocks on the real 2026 calendar: minutes, working hours, working days, pausing.

Office hours are 08:30-12:00 and 14:00-17:30 Beijing time (7 working hours a day). 2026:
National Day 1-7 October off with the make-up Saturday 10 October (and Sunday 20
September); Spring Festival 15-23 February off with the make-up Saturdays 14 and 28
February. Every expected instant below is worked out by hand in the comment beside it.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from zhengshu.casework import clocks
from zhengshu.casework.clocks import Deadline
from zhengshu.casework.definitions import Limit
from zhengshu.kernel.calendar import SHANGHAI, WorkCalendar

CAL = WorkCalendar()
SHARE = 0.8

needs_unknown_2027 = pytest.mark.skipif(
    CAL.is_known_year(2027),
    reason="chinesecalendar now knows 2027: move these cases to the next unpublished year",
)


def bj(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An instant given in Beijing time."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def hm(hours: int, minutes: int = 0) -> timedelta:
    return timedelta(hours=hours, minutes=minutes)


def test_the_2026_dates_used_here_fall_on_the_weekdays_the_comments_say() -> None:
    assert bj(2026, 9, 30).strftime("%a") == "Wed"
    assert bj(2026, 10, 10).strftime("%a") == "Sat"
    assert bj(2026, 2, 12).strftime("%a") == "Thu"
    assert bj(2026, 2, 14).strftime("%a") == "Sat"
    assert bj(2026, 12, 28).strftime("%a") == "Mon"
    assert CAL.is_workday(bj(2026, 10, 10).date()) is True
    assert CAL.is_workday(bj(2026, 2, 14).date()) is True
    assert CAL.is_workday(bj(2026, 2, 28).date()) is True
    assert CAL.is_workday(bj(2026, 10, 7).date()) is False


# --------------------------------------------------------------------------- minutes


def test_minutes_run_on_the_wall_clock() -> None:
    start = bj(2026, 9, 30, 9, 0)
    assert clocks.deadline(CAL, start, Limit(30, "m"), SHARE) == Deadline(
        due_at=bj(2026, 9, 30, 9, 30),
        warn_at=bj(2026, 9, 30, 9, 24),
        total=timedelta(minutes=30),
        provisional=False,
    )


def test_minutes_ignore_holidays_and_nights() -> None:
    # 03:00 on National Day: an emergency does not wait for office hours.
    due = clocks.deadline(CAL, bj(2026, 10, 1, 3, 0), Limit(5, "m"), SHARE)
    assert (due.due_at, due.warn_at) == (bj(2026, 10, 1, 3, 5), bj(2026, 10, 1, 3, 4))
    assert due.provisional is False


# --------------------------------------------------------------------------- working hours


def test_working_hours_inside_one_morning() -> None:
    due = clocks.deadline(CAL, bj(2026, 9, 30, 9, 0), Limit(2, "wh"), SHARE)
    # 09:00 + 2h = 11:00; yellow after 1.6h = 96 minutes: 10:36.
    assert due == Deadline(bj(2026, 9, 30, 11, 0), bj(2026, 9, 30, 10, 36), hm(2), False)


def test_working_hours_skip_lunch() -> None:
    due = clocks.deadline(CAL, bj(2026, 9, 30, 11, 0), Limit(2, "wh"), SHARE)
    # 11:00-12:00 is one hour, the second from 14:00: 15:00. Yellow at 96 min: 14:36.
    assert (due.due_at, due.warn_at) == (bj(2026, 9, 30, 15, 0), bj(2026, 9, 30, 14, 36))


def test_working_hours_across_national_day() -> None:
    due = clocks.deadline(CAL, bj(2026, 9, 30, 16, 30), Limit(2, "wh"), SHARE)
    # Wed 30 Sep 16:30-17:30 is one hour; 1-7 Oct off; Thu 8 Oct 08:30 + 1h = 09:30.
    # Yellow after 96 min: 60 on 30 Sep, 36 on 8 Oct: 09:06.
    assert due == Deadline(bj(2026, 10, 8, 9, 30), bj(2026, 10, 8, 9, 6), hm(2), False)


def test_working_hours_starting_before_the_office_opens_end_at_noon() -> None:
    due = clocks.deadline(CAL, bj(2026, 9, 30, 7, 0), Limit(4, "wh"), SHARE)
    # From 08:30: 3.5h to 12:00, 0.5h from 14:00: 14:30. Yellow at 3.2h = 08:30+3h12m = 11:42.
    assert (due.due_at, due.warn_at) == (bj(2026, 9, 30, 14, 30), bj(2026, 9, 30, 11, 42))
    # 3.5 working hours from 08:30 run out exactly at the end of the morning period.
    due = clocks.deadline(CAL, bj(2026, 9, 30, 7, 0), Limit(7, "wh"), SHARE)
    assert due.due_at == bj(2026, 9, 30, 17, 30)


def test_working_hours_on_a_make_up_saturday() -> None:
    due = clocks.deadline(CAL, bj(2026, 10, 10, 16, 0), Limit(4, "wh"), SHARE)
    # Sat 10 Oct is a working day: 1.5h to 17:30; Sun 11 off; Mon 12 08:30 + 2.5h = 11:00.
    assert due.due_at == bj(2026, 10, 12, 11, 0)
    # Yellow after 3.2h: 1.5h on Saturday, 1h42m on Monday: 10:12.
    assert due.warn_at == bj(2026, 10, 12, 10, 12)


# --------------------------------------------------------------------------- working days


def test_five_working_days_across_national_day() -> None:
    due = clocks.deadline(CAL, bj(2026, 9, 30, 9, 0), Limit(5, "wd"), SHARE)
    # Counted from the next day: 8, 9, 10 (make-up Saturday), 12, 13 October; closes 17:30.
    assert due.due_at == bj(2026, 10, 13, 17, 30)
    # The stage's length: 6.5h left on 30 Sep + 5 x 7h = 41.5 working hours.
    assert due.total == hm(41, 30)
    # Yellow at 80%: 33h12m = 6.5 (30 Sep) + 7 (8th) + 7 (9th) + 7 (10th) + 5h42m on Mon
    # 12 Oct: 3.5h morning, 2h12m from 14:00 -> 16:12.
    assert due.warn_at == bj(2026, 10, 12, 16, 12)
    assert due.provisional is False


def test_three_working_days_across_the_2026_spring_festival() -> None:
    due = clocks.deadline(CAL, bj(2026, 2, 12, 10, 0), Limit(3, "wd"), SHARE)
    # Fri 13, Sat 14 (make-up), then 15-23 Feb off, Tue 24: due 24 Feb 17:30.
    assert due.due_at == bj(2026, 2, 24, 17, 30)
    # 5.5h on the 12th (10:00-12:00, 14:00-17:30) + 3 x 7h = 26.5h.
    assert due.total == hm(26, 30)
    # Yellow at 21h12m: 5.5 + 7 + 7 = 19.5 by Saturday, 1h42m on the 24th: 10:12.
    assert due.warn_at == bj(2026, 2, 24, 10, 12)
    assert due.provisional is False


def test_the_make_up_saturday_after_the_spring_festival_counts() -> None:
    due = clocks.deadline(CAL, bj(2026, 2, 26, 9, 0), Limit(2, "wd"), SHARE)
    # Thu 26 Feb: Fri 27, Sat 28 (make-up): due Sat 28 Feb 17:30.
    assert due.due_at == bj(2026, 2, 28, 17, 30)


def test_working_days_started_on_a_holiday() -> None:
    due = clocks.deadline(CAL, bj(2026, 10, 3, 10, 0), Limit(1, "wd"), SHARE)
    # Sat 3 Oct is off: the first working day after it is Thu 8 Oct.
    assert due.due_at == bj(2026, 10, 8, 17, 30)
    assert due.total == hm(7)
    # Yellow after 5h36m of 8 Oct: 3.5h morning, 2h06m from 14:00: 16:06.
    assert due.warn_at == bj(2026, 10, 8, 16, 6)


def test_working_days_started_after_hours() -> None:
    due = clocks.deadline(CAL, bj(2026, 9, 30, 20, 0), Limit(2, "wd"), SHARE)
    # Nothing left of 30 Sep; 8 and 9 Oct: 14h, due Fri 9 Oct 17:30.
    assert (due.due_at, due.total) == (bj(2026, 10, 9, 17, 30), hm(14))
    # Yellow after 11h12m: 7h on the 8th, 4h12m on the 9th: 3.5 + 42 min -> 14:42.
    assert due.warn_at == bj(2026, 10, 9, 14, 42)


def test_the_close_of_day_follows_the_configured_office_hours() -> None:
    late = WorkCalendar(work_periods=((time(9, 0), time(12, 0)), (time(13, 0), time(18, 0))))
    due = clocks.deadline(late, bj(2026, 9, 30, 9, 0), Limit(1, "wd"), SHARE)
    assert due.due_at == bj(2026, 10, 8, 18, 0)
    assert clocks.close_of_day(CAL, bj(2026, 10, 8, 23, 0)) == bj(2026, 10, 8, 17, 30)
    # The local day of a UTC instant: 16:00 UTC on 7 Oct is 00:00 on 8 Oct in Beijing.
    utc = datetime(2026, 10, 7, 16, 0, tzinfo=UTC)
    assert clocks.close_of_day(CAL, utc) == bj(2026, 10, 8, 17, 30)


# --------------------------------------------------------------------------- pausing


def test_remaining_and_resume_round_trip_without_a_pause() -> None:
    due = clocks.deadline(CAL, bj(2026, 9, 30, 9, 0), Limit(5, "wd"), SHARE)
    now = bj(2026, 10, 8, 10, 0)
    left = clocks.remaining(CAL, now, due.due_at, "wd")
    # 5.5h on 8 Oct + 9, 10, 12, 13 Oct = 33.5h.
    assert left == hm(33, 30)
    again = clocks.resume(CAL, now, left, due.total, "wd", SHARE)
    assert (again.due_at, again.warn_at) == (due.due_at, due.warn_at)
    assert again.total == due.total
    assert again.provisional is False


def test_a_pause_shifts_due_and_warning_by_the_paused_working_time() -> None:
    due = clocks.deadline(CAL, bj(2026, 9, 30, 9, 0), Limit(5, "wd"), SHARE)
    paused_at, resumed_at = bj(2026, 10, 8, 10, 0), bj(2026, 10, 12, 10, 0)
    left = clocks.remaining(CAL, paused_at, due.due_at, "wd")
    again = clocks.resume(CAL, resumed_at, left, due.total, "wd", SHARE)
    # Paused: 5.5h (8th) + 7 (9th) + 7 (Sat 10th) + 1.5h (12th) = 21h = three working days.
    paused = CAL.working_time_between(paused_at, resumed_at).value
    assert paused == hm(21)
    # 33.5h from Mon 12 Oct 10:00: 5.5 (12th) + 7 + 7 + 7 (13-15th) + 7 (16th) -> 16 Oct 17:30.
    assert again.due_at == bj(2026, 10, 16, 17, 30)
    assert again.due_at == CAL.add_working_time(due.due_at, paused).value
    # Yellow when 8.3h (20% of 41.5h) are left: 25h12m after 12 Oct 10:00 = 5.5 (12th)
    # + 7 + 7 (13-14th) + 5h42m on the 15th (3.5h morning, 2h12m from 14:00) -> 15 Oct 16:12,
    # the old 12 Oct 16:12 three working days later.
    assert again.warn_at == bj(2026, 10, 15, 16, 12)
    assert again.warn_at == CAL.add_working_time(due.warn_at, paused).value


def test_remaining_and_resume_in_minutes() -> None:
    due = clocks.deadline(CAL, bj(2026, 9, 30, 9, 0), Limit(30, "m"), SHARE)
    left = clocks.remaining(CAL, bj(2026, 9, 30, 9, 10), due.due_at, "m")
    assert left == timedelta(minutes=20)
    again = clocks.resume(CAL, bj(2026, 9, 30, 11, 0), left, due.total, "m", SHARE)
    # 20 minutes to go; yellow when 6 (20% of 30) are left: 11:14.
    assert again == Deadline(
        bj(2026, 9, 30, 11, 20), bj(2026, 9, 30, 11, 14), timedelta(minutes=30), False
    )


def test_working_hours_round_trip() -> None:
    due = clocks.deadline(CAL, bj(2026, 9, 30, 16, 30), Limit(2, "wh"), SHARE)
    left = clocks.remaining(CAL, bj(2026, 9, 30, 17, 0), due.due_at, "wh")
    assert left == hm(1, 30)
    again = clocks.resume(CAL, bj(2026, 10, 9, 9, 0), left, due.total, "wh", SHARE)
    # 1.5h from Fri 9 Oct 09:00: 10:30; yellow when 24 min are left: 10:06.
    assert (again.due_at, again.warn_at) == (bj(2026, 10, 9, 10, 30), bj(2026, 10, 9, 10, 6))


def test_an_overdue_stage_has_nothing_left_and_resumes_already_due() -> None:
    due = clocks.deadline(CAL, bj(2026, 9, 30, 9, 0), Limit(30, "m"), SHARE)
    assert clocks.remaining(CAL, bj(2026, 9, 30, 10, 0), due.due_at, "m") == timedelta(0)
    wd = clocks.deadline(CAL, bj(2026, 9, 30, 9, 0), Limit(1, "wd"), SHARE)
    assert clocks.remaining(CAL, bj(2026, 10, 9, 9, 0), wd.due_at, "wd") == timedelta(0)
    again = clocks.resume(CAL, bj(2026, 10, 9, 9, 0), timedelta(0), wd.total, "wd", SHARE)
    assert again.due_at == again.warn_at == bj(2026, 10, 9, 9, 0)


def test_a_warning_already_passed_resumes_at_once() -> None:
    due = clocks.deadline(CAL, bj(2026, 9, 30, 9, 0), Limit(30, "m"), SHARE)
    left = clocks.remaining(CAL, bj(2026, 9, 30, 9, 27), due.due_at, "m")
    again = clocks.resume(CAL, bj(2026, 9, 30, 10, 0), left, due.total, "m", SHARE)
    assert (again.due_at, again.warn_at) == (bj(2026, 9, 30, 10, 3), bj(2026, 9, 30, 10, 0))


# --------------------------------------------------------------------------- extensions


def test_extending_by_working_days_moves_to_the_close_of_a_later_day() -> None:
    moved, provisional = clocks.extend(CAL, bj(2026, 10, 13, 17, 30), Limit(3, "wd"))
    # 14, 15, 16 October.
    assert (moved, provisional) == (bj(2026, 10, 16, 17, 30), False)
    moved, _ = clocks.extend(CAL, bj(2026, 2, 13, 15, 0), Limit(2, "wd"))
    # Sat 14 Feb (make-up), then the festival, Tue 24 Feb.
    assert moved == bj(2026, 2, 24, 17, 30)
    moved, _ = clocks.extend(CAL, bj(2026, 9, 30, 17, 30), Limit(1, "wd"))
    assert moved == bj(2026, 10, 8, 17, 30)


def test_extending_by_working_hours_and_minutes() -> None:
    moved, provisional = clocks.extend(CAL, bj(2026, 10, 13, 17, 30), Limit(4, "wh"))
    # Wed 14 Oct: 3.5h to noon, 0.5h after lunch: 14:30.
    assert (moved, provisional) == (bj(2026, 10, 14, 14, 30), False)
    moved, _ = clocks.extend(CAL, bj(2026, 9, 30, 16, 0), Limit(3, "wh"))
    # 1.5h to 17:30; 8 Oct 08:30 + 1.5h = 10:00.
    assert moved == bj(2026, 10, 8, 10, 0)
    moved, provisional = clocks.extend(CAL, bj(2026, 10, 1, 23, 0), Limit(90, "m"))
    assert (moved, provisional) == (bj(2026, 10, 2, 0, 30), False)


# --------------------------------------------------------------------------- provisional


@needs_unknown_2027
def test_a_deadline_in_2027_is_provisional() -> None:
    due = clocks.deadline(CAL, bj(2026, 12, 28, 10, 0), Limit(5, "wd"), SHARE)
    # 29, 30, 31 Dec, then 2027 on the Monday-Friday guess: Fri 1 Jan, Mon 4 Jan.
    assert due.due_at == bj(2027, 1, 4, 17, 30)
    assert due.provisional is True
    wh = clocks.deadline(CAL, bj(2026, 12, 31, 17, 0), Limit(2, "wh"), SHARE)
    assert (wh.due_at, wh.provisional) == (bj(2027, 1, 1, 10, 0), True)
    moved, provisional = clocks.extend(CAL, bj(2026, 12, 31, 17, 30), Limit(1, "wd"))
    assert (moved, provisional) == (bj(2027, 1, 1, 17, 30), True)
    left = clocks.remaining(CAL, bj(2026, 12, 28, 10, 0), due.due_at, "wd")
    again = clocks.resume(CAL, bj(2026, 12, 29, 10, 0), left, due.total, "wd", SHARE)
    assert again.provisional is True


@needs_unknown_2027
def test_minutes_are_never_provisional_and_2026_days_are_not() -> None:
    assert clocks.deadline(CAL, bj(2027, 3, 1, 9, 0), Limit(30, "m"), SHARE).provisional is False
    due = clocks.deadline(CAL, bj(2026, 12, 28, 10, 0), Limit(3, "wd"), SHARE)
    assert (due.due_at, due.provisional) == (bj(2026, 12, 31, 17, 30), False)


@needs_unknown_2027
def test_an_imported_2027_schedule_makes_the_deadline_firm() -> None:
    cal = WorkCalendar(overrides={bj(2027, 1, 1).date(): (False, "元旦")}, official_years=[2027])
    due = clocks.deadline(cal, bj(2026, 12, 28, 10, 0), Limit(5, "wd"), SHARE)
    # 29, 30, 31 Dec, (1 Jan off), Mon 4, Tue 5 Jan.
    assert (due.due_at, due.provisional) == (bj(2027, 1, 5, 17, 30), False)
