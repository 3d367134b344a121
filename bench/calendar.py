"""Due dates per second: WorkCalendar.add_working_days vs. chinese_calendar day by day."""

from __future__ import annotations

import random
import time
from datetime import date, timedelta

import chinese_calendar

from zhengshu.kernel.calendar import WorkCalendar

N = 20_000


def baseline(start: date, days: int) -> date:
    day = start
    while days:
        day += timedelta(days=1)
        if chinese_calendar.is_workday(day):
            days -= 1
    return day


def main() -> None:
    rng = random.Random(12345)
    cases = [
        (date(2025, 1, 1) + timedelta(days=rng.randrange(600)), rng.choice([1, 3, 5, 10, 15, 30]))
        for _ in range(N)
    ]
    calendar = WorkCalendar()
    started = time.perf_counter()
    ours = [calendar.add_working_days(s, n).value for s, n in cases]
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    theirs = [baseline(s, n) for s, n in cases]
    base_s = time.perf_counter() - started
    assert ours == theirs, "results differ from chinese_calendar"
    print(f"cases: {N} (2025-2026 starts, 1-30 working days)")
    print(f"WorkCalendar.add_working_days: {N / ours_s:,.0f}/s ({ours_s * 1e6 / N:.1f} µs each)")
    print(f"baseline chinese_calendar:     {N / base_s:,.0f}/s ({base_s * 1e6 / N:.1f} µs each)")
    print(f"ratio (ours / baseline throughput): {base_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
