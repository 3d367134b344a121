"""China's working-day calendar: which days are working days, and time limits counted in them.

The statutory schedule (public holidays and the weekend days turned into make-up working
days, 调休上班) comes from the ``chinesecalendar`` package, which gains a year once the State
Council publishes it. Above it sit local *overrides* an admin stores (a typhoon day off, or
an imported official schedule for a year the package does not know yet). For a year known
to neither, the calendar falls back to the Monday-Friday rule and marks every result that
rests on that guess as *provisional*, so callers can show "to be confirmed".

Dates are calendar days in Asia/Shanghai. Every datetime in or out is timezone-aware.
This module is pure logic: no database, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Generic, TypeVar
from zoneinfo import ZoneInfo

from chinese_calendar import constants as _cc  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "SHANGHAI",
    "DayInfo",
    "Reckoned",
    "ScheduleEntry",
    "ScheduleError",
    "WorkCalendar",
    "parse_schedule",
]

SHANGHAI: Final[ZoneInfo] = ZoneInfo("Asia/Shanghai")

T = TypeVar("T")

_ONE_DAY: Final = timedelta(days=1)
_FRIDAY: Final = 4

# chinese_calendar's English holiday names -> the names users read.
_HOLIDAY_NAMES_ZH: Final[Mapping[str, str]] = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利纪念日",
}
_MAKE_UP_SUFFIX: Final = "调休上班"

# The package's data, read once: statutory days off and make-up working days.
_STATUTORY_HOLIDAYS: Final[Mapping[date, str]] = dict(_cc.holidays)
_STATUTORY_WORKDAYS: Final[Mapping[date, str]] = dict(_cc.workdays)
# The package supports the years between its first and last holiday (it raises
# NotImplementedError outside that span; inside it every year is fully published).
_STATUTORY_YEARS: Final[frozenset[int]] = frozenset(
    range(
        min(d.year for d in _STATUTORY_HOLIDAYS),
        max(d.year for d in _STATUTORY_HOLIDAYS) + 1,
    )
)

_DEFAULT_WORK_PERIODS: Final[tuple[tuple[time, time], ...]] = (
    (time(8, 30), time(12, 0)),
    (time(14, 0), time(17, 30)),
)


def _holiday_name_zh(english: str) -> str:
    return _HOLIDAY_NAMES_ZH.get(english, english)


@dataclass(frozen=True)
class Reckoned(Generic[T]):
    """A calendar result and whether it rests on a guessed (Mon-Fri) schedule."""

    value: T
    provisional: bool


@dataclass(frozen=True)
class DayInfo:
    """One calendar day: working or not, why, and under which name.

    ``name`` is the Chinese holiday name ("春节"), "<holiday>调休上班" for a make-up working
    day, an override's note, or None for an ordinary day. ``source`` is "override",
    "statutory" or "weekday-rule"; ``provisional`` is True only for the weekday rule in a
    year whose official schedule is not known.
    """

    day: date
    is_workday: bool
    name: str | None
    source: str
    provisional: bool


@dataclass(frozen=True)
class ScheduleEntry:
    """One day of an official holiday schedule, as parsed from an admin's upload."""

    day: date
    is_workday: bool
    name: str


class ScheduleError(ValueError):
    """A holiday schedule that cannot be read; ``line`` is the 1-based offending line."""

    def __init__(self, line: int, message_zh: str, message_en: str) -> None:
        super().__init__(f"第{line}行：{message_zh} / line {line}: {message_en}")
        self.line = line
        self.message_zh = message_zh
        self.message_en = message_en


# --------------------------------------------------------------------------- schedule parsing

_KINDS: Final[Mapping[str, bool]] = {
    "休": False,
    "休息": False,
    "假": False,
    "放假": False,
    "holiday": False,
    "off": False,
    "rest": False,
    "班": True,
    "上班": True,
    "补班": True,
    "workday": True,
    "work": True,
}
_HEADER_FIRST_FIELDS: Final = frozenset({"date", "day", "日期"})
_DATE_RE: Final = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})")
_RANGE_SEP_RE: Final = re.compile(r"\s*(?:~|～|至)\s*")
# A range separator between two dates, with any spaces around it ("2027-02-06 至 2027-02-12").
_RANGE_JOIN_RE: Final = re.compile(r"(\d)\s*(?:~|～|至)\s*(\d)")
_MAX_RANGE_DAYS: Final = 366


def _split_fields(line: str) -> list[str]:
    line = _RANGE_JOIN_RE.sub(r"\1~\2", line.replace("，", ","))
    if "," in line or "\t" in line:
        fields = [f.strip() for f in re.split(r"[,\t]", line)]
    else:
        # Whitespace-separated: the name (third field) may itself contain spaces.
        fields = line.split(None, 2)
    fields = [f.strip().strip('"').strip() for f in fields]
    while fields and not fields[-1]:  # trailing empty cells of a spreadsheet export
        fields.pop()
    return fields


def _parse_one_date(text: str, lineno: int) -> date:
    m = _DATE_RE.fullmatch(text)
    if m is None:
        raise ScheduleError(
            lineno,
            f"日期“{text}”格式不对，应为YYYY-MM-DD",
            f"date {text!r} is not in YYYY-MM-DD form",
        )
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise ScheduleError(
            lineno, f"日期“{text}”不存在", f"date {text!r} does not exist"
        ) from None


def _parse_days(text: str, lineno: int) -> list[date]:
    parts = _RANGE_SEP_RE.split(text.strip())
    if len(parts) == 1:
        return [_parse_one_date(parts[0], lineno)]
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ScheduleError(
            lineno,
            f"日期范围“{text}”格式不对，应为“开始~结束”",
            f"date range {text!r} must be 'start~end'",
        )
    first, last = _parse_one_date(parts[0], lineno), _parse_one_date(parts[1], lineno)
    if last < first:
        raise ScheduleError(
            lineno,
            f"日期范围“{text}”的结束日期早于开始日期",
            f"date range {text!r} ends before it starts",
        )
    span = (last - first).days + 1
    if span > _MAX_RANGE_DAYS:
        raise ScheduleError(
            lineno,
            f"日期范围“{text}”超过{_MAX_RANGE_DAYS}天",
            f"date range {text!r} is longer than {_MAX_RANGE_DAYS} days",
        )
    return [first + timedelta(days=i) for i in range(span)]


def parse_schedule(text: str, *, year: int | None = None) -> list[ScheduleEntry]:
    """Parse an official holiday schedule an admin pastes or uploads (CSV or lines).

    Each line is ``YYYY-MM-DD,休|班|holiday|workday,名称`` (comma, tab or whitespace
    separated; the full-width comma "，" is accepted). Blank lines and lines starting with
    ``#`` are ignored, and so is an optional header row ``date,kind,name`` /
    ``日期,类型,名称``. A range ``2027-02-06~2027-02-12,休,春节`` (also ``至``) expands to each
    day. If ``year`` is given every date must be in that year. A date listed twice with the
    same kind is kept once (first name wins); with conflicting kinds it is an error.

    Returns the entries sorted by date. Raises ScheduleError naming the 1-based line.
    """
    entries: dict[date, tuple[ScheduleEntry, int]] = {}
    seen_content = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip("\ufeff").strip()
        if not line or line.startswith("#"):
            continue
        fields = _split_fields(line)
        if not seen_content:
            seen_content = True
            if fields and fields[0].lower() in _HEADER_FIRST_FIELDS:
                continue
        if len(fields) != 3 or not all(fields):
            raise ScheduleError(
                lineno,
                f"应为“日期,类型,名称”三项，实为{len(fields)}项",
                f"expected 3 fields 'date,kind,name', got {len(fields)}",
            )
        days_text, kind_text, name = fields
        days = _parse_days(days_text, lineno)
        kind = _KINDS.get(kind_text.lower())
        if kind is None:
            raise ScheduleError(
                lineno,
                f"类型“{kind_text}”无法识别，应为“休”或“班”",
                f"kind {kind_text!r} is not one of 休/班/holiday/workday",
            )
        for day in days:
            if year is not None and day.year != year:
                raise ScheduleError(
                    lineno,
                    f"日期{day.isoformat()}不在{year}年内",
                    f"date {day.isoformat()} is not in year {year}",
                )
            previous = entries.get(day)
            if previous is None:
                entries[day] = (ScheduleEntry(day=day, is_workday=kind, name=name), lineno)
            elif previous[0].is_workday != kind:
                raise ScheduleError(
                    lineno,
                    f"日期{day.isoformat()}与第{previous[1]}行冲突（一处为休、一处为班）",
                    f"date {day.isoformat()} conflicts with line {previous[1]} "
                    "(one says day off, the other working day)",
                )
    return [entries[day][0] for day in sorted(entries)]


# --------------------------------------------------------------------------- the calendar


def _require_aware(value: datetime, what_zh: str, what_en: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what_zh}必须带时区 / {what_en} must be a timezone-aware datetime")
    return value


class WorkCalendar:
    """Working days and working time under China's statutory schedule plus local overrides.

    Precedence for a day: an override, then the statutory schedule (when the package knows
    the year), then the Monday-Friday rule (provisional unless the year is declared official).
    The calendar is immutable after construction; per-day answers are memoized.
    """

    def __init__(
        self,
        *,
        overrides: Mapping[date, tuple[bool, str | None]] | None = None,
        official_years: Iterable[int] = (),
        work_periods: Sequence[tuple[time, time]] = _DEFAULT_WORK_PERIODS,
    ) -> None:
        self._overrides: dict[date, tuple[bool, str | None]] = {}
        for day, (is_workday, note) in (overrides or {}).items():
            if isinstance(day, datetime) or not isinstance(day, date):
                raise TypeError(f"覆盖设置的键必须是日期 / override keys must be dates: {day!r}")
            self._overrides[day] = (bool(is_workday), note)
        self._known_years: frozenset[int] = _STATUTORY_YEARS | frozenset(official_years)
        self._periods: tuple[tuple[time, time], ...] = self._check_periods(work_periods)
        self._memo: dict[date, DayInfo] = {}

    @property
    def work_periods(self) -> tuple[tuple[time, time], ...]:
        """Office hours of a working day, local time, in order."""
        return self._periods

    @staticmethod
    def _check_periods(periods: Sequence[tuple[time, time]]) -> tuple[tuple[time, time], ...]:
        checked = tuple((start, end) for start, end in periods)
        if not checked:
            raise ValueError("工作时段不能为空 / work_periods must not be empty")
        previous_end: time | None = None
        for start, end in checked:
            if start.tzinfo is not None or end.tzinfo is not None:
                raise ValueError(
                    "工作时段应为当地时间，不带时区 / work periods are local times without tzinfo"
                )
            if not start < end:
                raise ValueError(
                    f"工作时段{start}-{end}的开始须早于结束 / "
                    f"work period {start}-{end} must start before it ends"
                )
            if previous_end is not None and start < previous_end:
                raise ValueError(
                    "工作时段须按时间先后排列且互不重叠 / "
                    "work periods must be in order and must not overlap"
                )
            previous_end = end
        return checked

    # ----------------------------------------------------------------- days

    def known_years(self) -> frozenset[int]:
        """Years with an official schedule: the package's years and the declared ones."""
        return self._known_years

    def is_known_year(self, year: int) -> bool:
        return year in self._known_years

    def day_info(self, day: date) -> DayInfo:
        """Everything about one day; see the class docstring for precedence."""
        if isinstance(day, datetime):
            raise TypeError(f"需要日期而非日期时间 / expected a date, not a datetime: {day!r}")
        info = self._memo.get(day)
        if info is None:
            info = self._compute_day_info(day)
            self._memo[day] = info
        return info

    def _compute_day_info(self, day: date) -> DayInfo:
        override = self._overrides.get(day)
        if override is not None:
            is_workday, note = override
            return DayInfo(day, is_workday, note, "override", provisional=False)
        if day.year in _STATUTORY_YEARS:
            make_up = _STATUTORY_WORKDAYS.get(day)
            if make_up is not None:
                name = _holiday_name_zh(make_up) + _MAKE_UP_SUFFIX
                return DayInfo(day, True, name, "statutory", provisional=False)
            holiday = _STATUTORY_HOLIDAYS.get(day)
            if holiday is not None:
                return DayInfo(day, False, _holiday_name_zh(holiday), "statutory", False)
            return DayInfo(day, day.weekday() <= _FRIDAY, None, "statutory", provisional=False)
        return DayInfo(
            day,
            day.weekday() <= _FRIDAY,
            None,
            "weekday-rule",
            provisional=day.year not in self._known_years,
        )

    def is_workday(self, day: date) -> bool:
        return self.day_info(day).is_workday

    def add_working_days(self, start: date, n: int) -> Reckoned[date]:
        """The n-th working day after ``start`` (counting starts on the next day).

        ``n == 0`` returns ``start``; a negative ``n`` is an error. Provisional when any day
        stepped over (``start`` excluded, the result included) was guessed.
        """
        if n < 0:
            raise ValueError(f"工作日数不能为负：{n} / number of working days must be >= 0: {n}")
        day, remaining, provisional = start, n, False
        while remaining:
            day += _ONE_DAY
            info = self.day_info(day)
            provisional = provisional or info.provisional
            if info.is_workday:
                remaining -= 1
        return Reckoned(day, provisional)

    def working_days_between(self, start: date, end: date) -> Reckoned[int]:
        """The number of working days in ``(start, end]``; 0 when ``end <= start``."""
        count, provisional = 0, False
        day = start + _ONE_DAY
        while day <= end:
            info = self.day_info(day)
            provisional = provisional or info.provisional
            if info.is_workday:
                count += 1
            day += _ONE_DAY
        return Reckoned(count, provisional)

    # ----------------------------------------------------------------- working time

    def _periods_of(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """The work periods of one local day as UTC instants (none on a day off)."""
        if not self.day_info(day).is_workday:
            return
        for start, end in self._periods:
            yield (
                datetime.combine(day, start, tzinfo=SHANGHAI).astimezone(UTC),
                datetime.combine(day, end, tzinfo=SHANGHAI).astimezone(UTC),
            )

    def working_time_between(self, start: datetime, end: datetime) -> Reckoned[timedelta]:
        """Time inside the work periods of working days between two instants.

        Work periods are read in Asia/Shanghai local time. 0 when ``end <= start``.
        Provisional when any local day from ``start``'s to ``end``'s was guessed.
        """
        start_utc = _require_aware(start, "开始时间", "start").astimezone(UTC)
        end_utc = _require_aware(end, "结束时间", "end").astimezone(UTC)
        if end_utc <= start_utc:
            return Reckoned(timedelta(0), False)
        total, provisional = timedelta(0), False
        day = start_utc.astimezone(SHANGHAI).date()
        last_day = end_utc.astimezone(SHANGHAI).date()
        while day <= last_day:
            provisional = provisional or self.day_info(day).provisional
            for period_start, period_end in self._periods_of(day):
                lo, hi = max(period_start, start_utc), min(period_end, end_utc)
                if hi > lo:
                    total += hi - lo
            day += _ONE_DAY
        return Reckoned(total, provisional)

    def add_working_time(self, start: datetime, amount: timedelta) -> Reckoned[datetime]:
        """The instant (UTC) when ``amount`` of working time has elapsed after ``start``.

        Outside working time the clock starts at the next work period's start; an amount
        that runs out exactly at a period's end yields that end. With ``amount == 0`` the
        result is ``start`` itself when it lies within a work period (ends included), else
        the next period's start. Provisional when any local day from ``start``'s to the
        result's was guessed.
        """
        cursor = _require_aware(start, "开始时间", "start").astimezone(UTC)
        if amount < timedelta(0):
            raise ValueError(
                f"工作时长不能为负：{amount} / amount of working time must be >= 0: {amount}"
            )
        remaining, provisional = amount, False
        day = cursor.astimezone(SHANGHAI).date()
        while True:
            provisional = provisional or self.day_info(day).provisional
            for period_start, period_end in self._periods_of(day):
                if period_end < cursor:
                    continue
                segment_start = max(period_start, cursor)
                available = period_end - segment_start
                if remaining <= available:
                    return Reckoned(segment_start + remaining, provisional)
                remaining -= available
            day += _ONE_DAY
