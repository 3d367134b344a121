"""Spike detector: quiet on a seasonal stream, loud on a burst; the seasonal profile."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from zhengshu.modules.hotline.insight.spikes import SeasonalProfile, SpikeDetector

START = datetime(2025, 3, 3)  # noqa: DTZ001 - a Monday, naive local
KEYS = [("噪音", "虎门镇"), ("噪音", "长安镇"), ("供水", "南城街道"), ("交通", "东城街道")]
DAILY = [120.0, 60.0, 20.0, 5.0]


def hourly(hour: int, weekday: int) -> float:
    day = 0.2 + (
        1.8 if 9 <= hour < 12 else 1.4 if 14 <= hour < 18 else 0.6 if 7 <= hour < 22 else 0
    )
    return day * (0.7 if weekday >= 5 else 1.0)


def stream(days: int, seed: int, offset: int = 0) -> list[tuple[tuple[str, str], datetime]]:
    """A seasonal Poisson stream: four keys of different sizes, in time order."""
    rng = random.Random(seed)
    mean = sum(hourly(h, d) for h in range(24) for d in range(7)) / 168
    events = []
    for hour_index in range(days * 24):
        begin = START + timedelta(days=offset, hours=hour_index)
        factor = hourly(begin.hour, begin.weekday()) / mean
        for key, daily in zip(KEYS, DAILY, strict=True):
            rate = daily / 24 * factor
            # Poisson by counting exponential gaps within the hour
            t = rng.expovariate(rate) if rate > 0 else 2.0
            while t < 1.0:
                events.append((key, begin + timedelta(hours=t)))
                t += rng.expovariate(rate)
    events.sort(key=lambda e: e[1])
    return events


def trained() -> SpikeDetector:
    return SpikeDetector().fit(stream(28, seed=1))


def test_profile_learns_day_and_night() -> None:
    profile = SeasonalProfile.fit(at for _, at in stream(14, seed=2))
    monday_10 = profile.shape[10]
    monday_03 = profile.shape[3]
    assert monday_10 > 3 * monday_03
    assert abs(sum(profile.shape) / 168 - 1.0) < 1e-9
    week = profile.integral(0.0, 7 * 1440.0)
    assert abs(week - 7.0) < 1e-9


def test_quiet_on_a_seasonal_stream() -> None:
    detector = trained()
    assert detector.run(stream(14, seed=3, offset=28)) == []
    assert 100 < detector.level(KEYS[0]) < 140


def test_warns_on_a_burst_with_its_onset() -> None:
    detector = trained()
    events = stream(7, seed=4, offset=28)
    onset = START + timedelta(days=31, hours=20, minutes=10)  # a quiet evening hour
    burst = [(KEYS[1], onset + timedelta(minutes=2 * i)) for i in range(30)]
    warnings = detector.run(sorted(events + burst, key=lambda e: e[1]))
    assert len(warnings) == 1
    (warning,) = warnings
    assert warning.key == KEYS[1]
    assert onset <= warning.detected_at <= onset + timedelta(hours=2)
    assert abs((warning.onset - onset).total_seconds()) <= 30 * 60
    assert warning.observed > warning.expected
    assert warning.severity in (1, 2, 3)
    assert warning.severity_label


def test_the_baseline_from_sums_is_the_baseline_from_the_orders() -> None:
    """What the database sums (orders per key, per hour) gives the same baseline as the
    orders one by one: the scan need not fetch a month of orders every five minutes."""
    rng = random.Random(7)
    start = datetime(2026, 10, 5)  # noqa: DTZ001 - naive local time, as the detector reads it
    events = sorted(
        (
            rng.choice(["噪音|东城", "停水|石碣", "占道|南城"]),
            start + timedelta(minutes=rng.uniform(0, 28 * 1440)),
        )
        for _ in range(3000)
    )
    one_by_one = SpikeDetector().fit(events)
    per_key: dict[object, int] = {}
    per_hour: dict[datetime, int] = {}
    for key, at in events:
        per_key[key] = per_key.get(key, 0) + 1
        hour = at.replace(minute=0, second=0, microsecond=0)
        per_hour[hour] = per_hour.get(hour, 0) + 1
    summed = SpikeDetector().fit_counts(per_key, per_hour)
    assert summed.profile.shape == one_by_one.profile.shape
    for key in per_key:
        assert summed.level(key) == one_by_one.level(key)
    assert one_by_one.level("噪音|东城") > 0
