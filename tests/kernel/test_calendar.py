"""China's working-day calendar against the real 2025 and 2026 State Council schedules."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import chinese_calendar
import pytest

from zhengshu.kernel.calendar import (
    SHANGHAI,
    DayInfo,
    Reckoned,
    ScheduleEntry,
    ScheduleError,
    WorkCalendar,
    parse_schedule,
)

CAL = WorkCalendar()

# chinesecalendar gains a year once the State Council publishes it; the 2027 cases below
# describe a year the package does not know yet (1.11 knows 2004-2026).
needs_unknown_2027 = pytest.mark.skipif(
    CAL.is_known_year(2027),
    reason="chinesecalendar now knows 2027: move these cases to the next unpublished year",
)


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An instant given in Asia/Shanghai local time."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def utc_of(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """The UTC instant of a Shanghai local time (UTC+8, no DST since 1991)."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def hm(hours: int, minutes: int = 0) -> timedelta:
    return timedelta(hours=hours, minutes=minutes)


# --------------------------------------------------------------------------- statutory days


def test_known_years_are_the_package_years() -> None:
    years = CAL.known_years()
    assert min(years) == 2004
    assert years == frozenset(range(2004, max(years) + 1))
    assert {2025, 2026} <= years
    assert CAL.is_known_year(2025) is True
    assert CAL.is_known_year(2003) is False


def test_official_years_join_the_known_years() -> None:
    cal = WorkCalendar(official_years=[2099])
    assert cal.known_years() == CAL.known_years() | {2099}
    assert cal.is_known_year(2099) is True
    assert CAL.is_known_year(2099) is False


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        # 2025 Spring Festival: off Jan 28 - Feb 4, make-up Sun Jan 26 and Sat Feb 8.
        (date(2025, 1, 25), DayInfo(date(2025, 1, 25), False, None, "statutory", False)),
        (date(2025, 1, 26), DayInfo(date(2025, 1, 26), True, "春节调休上班", "statutory", False)),
        (date(2025, 1, 27), DayInfo(date(2025, 1, 27), True, None, "statutory", False)),
        (date(2025, 1, 28), DayInfo(date(2025, 1, 28), False, "春节", "statutory", False)),
        (date(2025, 2, 4), DayInfo(date(2025, 2, 4), False, "春节", "statutory", False)),
        (date(2025, 2, 5), DayInfo(date(2025, 2, 5), True, None, "statutory", False)),
        (date(2025, 2, 8), DayInfo(date(2025, 2, 8), True, "春节调休上班", "statutory", False)),
        # 2025 National Day + Mid-Autumn: off Oct 1 - 8, make-up Sun Sep 28 and Sat Oct 11.
        (date(2025, 9, 28), DayInfo(date(2025, 9, 28), True, "国庆节调休上班", "statutory", False)),
        (date(2025, 10, 1), DayInfo(date(2025, 10, 1), False, "国庆节", "statutory", False)),
        (date(2025, 10, 6), DayInfo(date(2025, 10, 6), False, "中秋节", "statutory", False)),
        (date(2025, 10, 8), DayInfo(date(2025, 10, 8), False, "国庆节", "statutory", False)),
        (
            date(2025, 10, 11),
            DayInfo(date(2025, 10, 11), True, "国庆节调休上班", "statutory", False),
        ),
        # 2026 Spring Festival: off Feb 15 - 23, make-up Sat Feb 14 and Sat Feb 28.
        (date(2026, 2, 14), DayInfo(date(2026, 2, 14), True, "春节调休上班", "statutory", False)),
        (date(2026, 2, 15), DayInfo(date(2026, 2, 15), False, "春节", "statutory", False)),
        (date(2026, 2, 23), DayInfo(date(2026, 2, 23), False, "春节", "statutory", False)),
        (date(2026, 2, 24), DayInfo(date(2026, 2, 24), True, None, "statutory", False)),
        (date(2026, 2, 28), DayInfo(date(2026, 2, 28), True, "春节调休上班", "statutory", False)),
        # 2026 National Day: off Oct 1 - 7, make-up Sun Sep 20 and Sat Oct 10.
        (date(2026, 9, 20), DayInfo(date(2026, 9, 20), True, "国庆节调休上班", "statutory", False)),
        (date(2026, 9, 25), DayInfo(date(2026, 9, 25), False, "中秋节", "statutory", False)),
        (date(2026, 10, 7), DayInfo(date(2026, 10, 7), False, "国庆节", "statutory", False)),
        (date(2026, 10, 8), DayInfo(date(2026, 10, 8), True, None, "statutory", False)),
        (
            date(2026, 10, 10),
            DayInfo(date(2026, 10, 10), True, "国庆节调休上班", "statutory", False),
        ),
        (date(2026, 10, 11), DayInfo(date(2026, 10, 11), False, None, "statutory", False)),
        # Other names mapped to Chinese.
        (date(2025, 1, 1), DayInfo(date(2025, 1, 1), False, "元旦", "statutory", False)),
        (date(2026, 1, 4), DayInfo(date(2026, 1, 4), True, "元旦调休上班", "statutory", False)),
        (date(2025, 4, 4), DayInfo(date(2025, 4, 4), False, "清明节", "statutory", False)),
        (date(2025, 5, 5), DayInfo(date(2025, 5, 5), False, "劳动节", "statutory", False)),
        (date(2025, 4, 27), DayInfo(date(2025, 4, 27), True, "劳动节调休上班", "statutory", False)),
        (date(2025, 6, 2), DayInfo(date(2025, 6, 2), False, "端午节", "statutory", False)),
        (date(2015, 9, 3), DayInfo(date(2015, 9, 3), False, "抗战胜利纪念日", "statutory", False)),
        (
            date(2015, 9, 6),
            DayInfo(date(2015, 9, 6), True, "抗战胜利纪念日调休上班", "statutory", False),
        ),
    ],
)
def test_day_info_follows_the_state_council_schedule(day: date, expected: DayInfo) -> None:
    assert CAL.day_info(day) == expected
    assert CAL.is_workday(day) is expected.is_workday


@pytest.mark.parametrize(
    "day",
    [
        date(2025, 1, 26),
        date(2025, 2, 8),
        date(2025, 9, 28),
        date(2025, 10, 11),
        date(2026, 2, 14),
        date(2026, 2, 28),
        date(2026, 9, 20),
        date(2026, 10, 10),
    ],
)
def test_weekend_make_up_days_are_working_days(day: date) -> None:
    assert day.weekday() in (5, 6)
    assert CAL.is_workday(day) is True


def test_statutory_years_agree_with_the_package_day_by_day() -> None:
    day, mismatches = date(2004, 1, 1), []
    while day <= date(2026, 12, 31):
        if CAL.is_workday(day) is not chinese_calendar.is_workday(day):
            mismatches.append(day)
        day += timedelta(days=1)
    assert mismatches == []


def test_day_info_refuses_a_datetime() -> None:
    with pytest.raises(TypeError):
        CAL.day_info(sh(2025, 3, 3, 9))


# --------------------------------------------------------------------------- working days


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2025, 3, 3), 0, date(2025, 3, 3)),
        (date(2025, 3, 3), 1, date(2025, 3, 4)),
        (date(2025, 3, 7), 1, date(2025, 3, 10)),  # Friday -> Monday
        (date(2025, 3, 8), 1, date(2025, 3, 10)),  # counted from a Saturday
        # 2025 Spring Festival: Sun 26 (make-up), Mon 27, then Wed Feb 5.
        (date(2025, 1, 24), 1, date(2025, 1, 26)),
        (date(2025, 1, 24), 2, date(2025, 1, 27)),
        (date(2025, 1, 24), 3, date(2025, 2, 5)),
        (date(2025, 1, 27), 5, date(2025, 2, 10)),  # Feb 5, 6, 7, Sat 8, Mon 10
        # 2025 National Day: Oct 9, 10, Sat 11 (make-up).
        (date(2025, 9, 30), 3, date(2025, 10, 11)),
        (date(2025, 9, 26), 1, date(2025, 9, 28)),  # Fri -> Sun make-up day
        # 2026 Spring Festival: Sat 14 (make-up), then Tue Feb 24.
        (date(2026, 2, 13), 1, date(2026, 2, 14)),
        (date(2026, 2, 13), 2, date(2026, 2, 24)),
        (date(2026, 2, 24), 4, date(2026, 2, 28)),  # 25, 26, 27, Sat 28
        # 2026 National Day: Oct 8, 9, Sat 10 (make-up).
        (date(2026, 9, 30), 3, date(2026, 10, 10)),
        (date(2026, 9, 30), 4, date(2026, 10, 12)),
        (date(2026, 9, 18), 1, date(2026, 9, 20)),  # Fri -> Sun make-up day
        (date(2025, 1, 1), 248, date(2025, 12, 31)),  # 2025 has 248 working days
    ],
)
def test_add_working_days(start: date, n: int, expected: date) -> None:
    assert CAL.add_working_days(start, n) == Reckoned(expected, False)


def test_add_working_days_rejects_negative() -> None:
    with pytest.raises(ValueError, match="number of working days must be >= 0"):
        CAL.add_working_days(date(2025, 3, 3), -1)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2025, 3, 3), date(2025, 3, 3), 0),
        (date(2025, 3, 10), date(2025, 3, 3), 0),
        (date(2025, 3, 3), date(2025, 3, 4), 1),
        (date(2025, 3, 3), date(2025, 3, 10), 5),
        (date(2025, 1, 24), date(2025, 2, 10), 7),  # 26, 27, Feb 5, 6, 7, 8, 10
        (date(2025, 9, 26), date(2025, 10, 12), 6),  # Sep 28, 29, 30, Oct 9, 10, Sat 11
        (date(2026, 2, 13), date(2026, 3, 1), 6),  # 14, 24, 25, 26, 27, 28
        (date(2026, 9, 18), date(2026, 10, 12), 12),
        (date(2025, 1, 1), date(2025, 12, 31), 248),
        (date(2025, 12, 31), date(2026, 12, 31), 248),
    ],
)
def test_working_days_between(start: date, end: date, expected: int) -> None:
    assert CAL.working_days_between(start, end) == Reckoned(expected, False)


def test_working_days_between_inverts_add_working_days() -> None:
    start = date(2025, 1, 20)
    for n in range(1, 400):
        result = CAL.add_working_days(start, n)
        assert CAL.working_days_between(start, result.value).value == n


# --------------------------------------------------------------------------- working time


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (sh(2025, 3, 3, 9), sh(2025, 3, 3, 10, 30), hm(1, 30)),
        (sh(2025, 3, 3, 11), sh(2025, 3, 3, 15), hm(2)),  # across the lunch break
        (sh(2025, 3, 3, 12, 30), sh(2025, 3, 3, 13, 30), hm(0)),  # inside lunch
        (sh(2025, 3, 3, 7), sh(2025, 3, 3, 20), hm(7)),  # a whole working day
        (sh(2025, 3, 3, 16), sh(2025, 3, 4, 9, 30), hm(2, 30)),  # across a night
        (sh(2025, 3, 7, 17), sh(2025, 3, 10, 9), hm(1)),  # across a weekend
        # Across the 2026 National Day break: 1h on Sep 30, 1h on Oct 8.
        (sh(2026, 9, 30, 16, 30), sh(2026, 10, 8, 9, 30), hm(2)),
        # Across the 2025 Spring Festival: Mon Jan 27 16:00 -> Wed Feb 5 10:00.
        (sh(2025, 1, 27, 16), sh(2025, 2, 5, 10), hm(3)),
        # Starting on the make-up Saturday Feb 14, 2026: 2h + 3.5h, then 0.5h on Feb 24.
        (sh(2026, 2, 14, 10), sh(2026, 2, 24, 9), hm(6)),
        # An ordinary Saturday counts nothing.
        (sh(2025, 3, 8, 9), sh(2025, 3, 8, 17), hm(0)),
        (sh(2025, 3, 3, 15), sh(2025, 3, 3, 9), hm(0)),  # end before start
        # UTC inputs are read in Shanghai time: 03:00Z = 11:00, 07:00Z = 15:00.
        (
            datetime(2025, 3, 3, 3, tzinfo=UTC),
            datetime(2025, 3, 3, 7, tzinfo=UTC),
            hm(2),
        ),
        # 23:00Z on Sunday is 07:00 Monday in Shanghai.
        (
            datetime(2025, 3, 2, 23, tzinfo=UTC),
            datetime(2025, 3, 3, 1, tzinfo=UTC),
            hm(0, 30),
        ),
    ],
)
def test_working_time_between(start: datetime, end: datetime, expected: timedelta) -> None:
    assert CAL.working_time_between(start, end) == Reckoned(expected, False)


def test_working_time_refuses_naive_datetimes() -> None:
    naive = datetime(2025, 3, 3, 9)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.working_time_between(naive, sh(2025, 3, 3, 10))
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.add_working_time(naive, hm(1))


@pytest.mark.parametrize(
    ("start", "amount", "expected"),
    [
        (sh(2025, 3, 3, 9), hm(1), utc_of(2025, 3, 3, 10)),
        (sh(2025, 3, 3, 11), hm(2), utc_of(2025, 3, 3, 15)),  # over lunch
        (sh(2025, 3, 3, 11), hm(1), utc_of(2025, 3, 3, 12)),  # exactly a period end
        (sh(2025, 3, 3, 15), hm(2, 30), utc_of(2025, 3, 3, 17, 30)),  # exactly the day end
        (sh(2025, 3, 3, 12, 30), hm(1), utc_of(2025, 3, 3, 15)),  # starts in lunch
        (sh(2025, 3, 3, 20), hm(1), utc_of(2025, 3, 4, 9, 30)),  # starts at night
        (sh(2025, 3, 3, 6), hm(1), utc_of(2025, 3, 3, 9, 30)),  # starts before work
        (sh(2025, 3, 7, 17), hm(4), utc_of(2025, 3, 10, 12)),  # Fri -> Mon period end
        (sh(2025, 3, 3, 8, 30), hm(21), utc_of(2025, 3, 5, 17, 30)),  # three full days
        (sh(2025, 3, 3, 10), hm(0), utc_of(2025, 3, 3, 10)),
        (sh(2025, 3, 3, 12), hm(0), utc_of(2025, 3, 3, 12)),
        (sh(2025, 3, 3, 20), hm(0), utc_of(2025, 3, 4, 8, 30)),
        # Over the 2025 National Day break: 30 min on Sep 30, resume Thu Oct 9.
        (sh(2025, 9, 30, 17), hm(1), utc_of(2025, 10, 9, 9)),
        # Into the make-up Saturday Feb 14, 2026.
        (sh(2026, 2, 13, 17), hm(1), utc_of(2026, 2, 14, 9)),
        # Starting on the make-up Saturday, over the 2026 Spring Festival to Feb 24.
        (sh(2026, 2, 14, 16), hm(3), utc_of(2026, 2, 24, 10)),
        (datetime(2025, 3, 3, 3, tzinfo=UTC), hm(2), utc_of(2025, 3, 3, 15)),
    ],
)
def test_add_working_time(start: datetime, amount: timedelta, expected: datetime) -> None:
    result = CAL.add_working_time(start, amount)
    assert result == Reckoned(expected, False)
    assert result.value.tzinfo is UTC


def test_add_working_time_rejects_negative() -> None:
    with pytest.raises(ValueError, match="amount of working time must be >= 0"):
        CAL.add_working_time(sh(2025, 3, 3, 9), timedelta(minutes=-1))


def test_add_working_time_and_working_time_between_agree() -> None:
    start = sh(2026, 2, 12, 10, 15)
    for minutes in range(0, 60 * 60, 37):
        end = CAL.add_working_time(start, timedelta(minutes=minutes)).value
        assert CAL.working_time_between(start, end).value == timedelta(minutes=minutes)


def test_custom_work_periods() -> None:
    cal = WorkCalendar(work_periods=[(time(9), time(17))])
    assert cal.working_time_between(sh(2025, 3, 3, 8), sh(2025, 3, 4, 10)) == Reckoned(hm(9), False)
    assert cal.add_working_time(sh(2025, 3, 3, 16), hm(2)) == Reckoned(
        utc_of(2025, 3, 4, 10), False
    )


@pytest.mark.parametrize(
    "periods",
    [
        [],
        [(time(12), time(8))],
        [(time(8), time(12)), (time(11), time(17))],
        [(time(14), time(17)), (time(8), time(12))],
    ],
)
def test_bad_work_periods_are_refused(periods: list[tuple[time, time]]) -> None:
    with pytest.raises(ValueError, match="work"):
        WorkCalendar(work_periods=periods)


# --------------------------------------------------------------------------- unknown years


@needs_unknown_2027
def test_unknown_year_falls_back_to_monday_to_friday() -> None:
    assert CAL.is_known_year(2027) is False
    # Jan 1, 2027 is a Friday: no holiday is guessed, only weekends.
    assert CAL.day_info(date(2027, 1, 1)) == DayInfo(
        date(2027, 1, 1), True, None, "weekday-rule", True
    )
    assert CAL.day_info(date(2027, 1, 2)) == DayInfo(
        date(2027, 1, 2), False, None, "weekday-rule", True
    )
    assert CAL.add_working_days(date(2027, 1, 1), 5) == Reckoned(date(2027, 1, 8), True)
    # From the known 2026 into the unknown 2027: Dec 31, Jan 1 (guessed), Mon Jan 4.
    assert CAL.add_working_days(date(2026, 12, 30), 3) == Reckoned(date(2027, 1, 4), True)
    assert CAL.add_working_days(date(2026, 12, 30), 1) == Reckoned(date(2026, 12, 31), False)
    assert CAL.working_days_between(date(2026, 12, 30), date(2027, 1, 10)) == Reckoned(7, True)
    assert CAL.working_days_between(date(2026, 12, 1), date(2026, 12, 31)) == Reckoned(22, False)
    # Spring Festival 2027 is not known, so Feb 8 counts as an ordinary Monday.
    assert CAL.add_working_days(date(2027, 2, 5), 1) == Reckoned(date(2027, 2, 8), True)
    assert CAL.working_time_between(sh(2026, 12, 31, 17), sh(2027, 1, 1, 9)) == Reckoned(
        hm(1), True
    )
    assert CAL.working_time_between(sh(2026, 12, 31, 9), sh(2026, 12, 31, 10)) == Reckoned(
        hm(1), False
    )
    assert CAL.add_working_time(sh(2026, 12, 31, 17), hm(7)) == Reckoned(
        utc_of(2027, 1, 1, 17), True
    )


def test_far_unknown_year_is_provisional() -> None:
    assert CAL.day_info(date(2099, 1, 1)) == DayInfo(
        date(2099, 1, 1), True, None, "weekday-rule", True
    )
    assert CAL.add_working_days(date(2099, 1, 1), 2) == Reckoned(date(2099, 1, 5), True)


def test_official_year_without_overrides_is_not_provisional() -> None:
    cal = WorkCalendar(official_years=[2099])
    assert cal.day_info(date(2099, 1, 1)) == DayInfo(
        date(2099, 1, 1), True, None, "weekday-rule", False
    )
    assert cal.add_working_days(date(2099, 1, 1), 2) == Reckoned(date(2099, 1, 5), False)


# --------------------------------------------------------------------------- overrides


def test_local_day_off_overrides_a_statutory_working_day() -> None:
    typhoon = date(2025, 7, 30)  # a Wednesday
    cal = WorkCalendar(overrides={typhoon: (False, "台风停工")})
    assert CAL.is_workday(typhoon) is True
    assert cal.is_workday(typhoon) is False
    assert cal.day_info(typhoon) == DayInfo(typhoon, False, "台风停工", "override", False)
    assert CAL.add_working_days(date(2025, 7, 29), 1) == Reckoned(date(2025, 7, 30), False)
    assert cal.add_working_days(date(2025, 7, 29), 1) == Reckoned(date(2025, 7, 31), False)
    assert cal.working_days_between(date(2025, 7, 28), date(2025, 8, 1)) == Reckoned(3, False)
    assert cal.working_time_between(sh(2025, 7, 29, 17), sh(2025, 7, 31, 9)) == Reckoned(
        hm(1), False
    )
    assert cal.add_working_time(sh(2025, 7, 29, 17), hm(1)) == Reckoned(
        utc_of(2025, 7, 31, 9), False
    )


def test_override_can_turn_a_holiday_into_a_working_day() -> None:
    cal = WorkCalendar(overrides={date(2025, 1, 28): (True, None)})
    assert cal.day_info(date(2025, 1, 28)) == DayInfo(
        date(2025, 1, 28), True, None, "override", False
    )
    assert cal.add_working_days(date(2025, 1, 27), 1) == Reckoned(date(2025, 1, 28), False)


ILLUSTRATIVE_2027_SCHEDULE = """\
日期,类型,名称
# An illustrative schedule, as an admin would import it before the package knows 2027.
2027-01-01，休，元旦
2027-02-06~2027-02-12,休,春节
2027-02-14,班,春节调休上班
"""


@needs_unknown_2027
def test_imported_official_year_overrides_the_guess() -> None:
    entries = parse_schedule(ILLUSTRATIVE_2027_SCHEDULE, year=2027)
    cal = WorkCalendar(
        overrides={e.day: (e.is_workday, e.name) for e in entries}, official_years=[2027]
    )
    assert cal.is_known_year(2027) is True
    assert cal.day_info(date(2027, 2, 8)) == DayInfo(
        date(2027, 2, 8), False, "春节", "override", False
    )
    assert cal.day_info(date(2027, 2, 14)) == DayInfo(
        date(2027, 2, 14), True, "春节调休上班", "override", False
    )
    assert cal.day_info(date(2027, 3, 1)) == DayInfo(
        date(2027, 3, 1), True, None, "weekday-rule", False
    )
    # Fri Feb 5 -> (6-12 off, Sat 13 off) -> Sun 14 make-up -> Mon 15.
    assert cal.add_working_days(date(2027, 2, 5), 1) == Reckoned(date(2027, 2, 14), False)
    assert cal.add_working_days(date(2027, 2, 5), 2) == Reckoned(date(2027, 2, 15), False)
    assert CAL.add_working_days(date(2027, 2, 5), 2) == Reckoned(date(2027, 2, 9), True)
    assert cal.add_working_days(date(2026, 12, 30), 2) == Reckoned(date(2027, 1, 4), False)
    assert cal.working_days_between(date(2027, 2, 1), date(2027, 2, 28)) == Reckoned(15, False)
    assert cal.working_time_between(sh(2027, 2, 5, 17), sh(2027, 2, 14, 9)) == Reckoned(
        hm(1), False
    )


@needs_unknown_2027
def test_override_alone_makes_only_its_own_day_certain() -> None:
    cal = WorkCalendar(overrides={date(2027, 1, 1): (False, "元旦")})
    assert cal.day_info(date(2027, 1, 1)) == DayInfo(
        date(2027, 1, 1), False, "元旦", "override", False
    )
    assert cal.day_info(date(2027, 1, 4)).provisional is True
    assert cal.add_working_days(date(2026, 12, 30), 2) == Reckoned(date(2027, 1, 4), True)
    assert cal.working_days_between(date(2026, 12, 31), date(2027, 1, 1)) == Reckoned(0, False)


def test_override_keys_must_be_dates() -> None:
    with pytest.raises(TypeError):
        WorkCalendar(overrides={sh(2025, 3, 3): (False, None)})


# --------------------------------------------------------------------------- schedule parsing


def test_parse_schedule_happy_path() -> None:
    text = (
        "\ufeff日期,类型,名称\n"
        "\n"
        "# 2027年节假日安排（示例）\n"
        "2027-01-01，休，元旦\n"
        "2027-02-06~2027-02-08,休,春节\n"
        "2027-02-09 至 2027-02-10\tholiday\t春节\n"
        "2027-02-14 班 春节调休上班\n"
        "2027-02-11 ～ 2027-02-12  休  春节 假期\n"
        "2027-02-20,WORKDAY,春节调休上班,,\n"
        "2027-02-06,休,春节（重复）\n"
    )
    assert parse_schedule(text, year=2027) == [
        ScheduleEntry(date(2027, 1, 1), False, "元旦"),
        ScheduleEntry(date(2027, 2, 6), False, "春节"),
        ScheduleEntry(date(2027, 2, 7), False, "春节"),
        ScheduleEntry(date(2027, 2, 8), False, "春节"),
        ScheduleEntry(date(2027, 2, 9), False, "春节"),
        ScheduleEntry(date(2027, 2, 10), False, "春节"),
        ScheduleEntry(date(2027, 2, 11), False, "春节 假期"),
        ScheduleEntry(date(2027, 2, 12), False, "春节 假期"),
        ScheduleEntry(date(2027, 2, 14), True, "春节调休上班"),
        ScheduleEntry(date(2027, 2, 20), True, "春节调休上班"),
    ]


def test_parse_schedule_english_header_and_no_year() -> None:
    text = "date,kind,name\n2026-12-31,workday,值班\n2027-01-01,holiday,New Year\n"
    assert parse_schedule(text) == [
        ScheduleEntry(date(2026, 12, 31), True, "值班"),
        ScheduleEntry(date(2027, 1, 1), False, "New Year"),
    ]


def test_parse_schedule_empty() -> None:
    assert parse_schedule("") == []
    assert parse_schedule("# nothing yet\n\n") == []


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "2027-01-01,休,元旦\n2027-02-30,休,春节\n",
            2,
            "第2行：日期“2027-02-30”不存在 / line 2: date '2027-02-30' does not exist",
        ),
        (
            "27-02-01,休,春节\n",
            1,
            "第1行：日期“27-02-01”格式不对，应为YYYY-MM-DD"
            " / line 1: date '27-02-01' is not in YYYY-MM-DD form",
        ),
        (
            "# 注释\n2027-02-01,放松,春节\n",
            2,
            "第2行：类型“放松”无法识别，应为“休”或“班”"
            " / line 2: kind '放松' is not one of 休/班/holiday/workday",
        ),
        (
            "2027-01-01,休,元旦\n\n2026-12-31,休,元旦\n",
            3,
            "第3行：日期2026-12-31不在2027年内 / line 3: date 2026-12-31 is not in year 2027",
        ),
        (
            "2027-12-31~2028-01-01,休,元旦\n",
            1,
            "第1行：日期2028-01-01不在2027年内 / line 1: date 2028-01-01 is not in year 2027",
        ),
        (
            "2027-02-06~2027-02-12,休,春节\n2027-02-13,班,春节调休上班\n2027-02-07,班,调休\n",
            3,
            "第3行：日期2027-02-07与第1行冲突（一处为休、一处为班）"
            " / line 3: date 2027-02-07 conflicts with line 1"
            " (one says day off, the other working day)",
        ),
        (
            "2027-02-06,休\n",
            1,
            "第1行：应为“日期,类型,名称”三项，实为2项"
            " / line 1: expected 3 fields 'date,kind,name', got 2",
        ),
        (
            "2027-02-12~2027-02-06,休,春节\n",
            1,
            "第1行：日期范围“2027-02-12~2027-02-06”的结束日期早于开始日期"
            " / line 1: date range '2027-02-12~2027-02-06' ends before it starts",
        ),
        (
            "日期,类型,名称\n日期,类型,名称\n",
            2,
            "第2行：日期“日期”格式不对，应为YYYY-MM-DD"
            " / line 2: date '日期' is not in YYYY-MM-DD form",
        ),
    ],
)
def test_parse_schedule_errors(text: str, line: int, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(text, year=2027)
    assert caught.value.line == line
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)
