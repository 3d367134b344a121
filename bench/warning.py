"""Spike warning on a synthetic city stream: recall, time to detection, false warnings a
day; SpikeDetector vs. a naive fixed threshold per key (no seasonality).

The stream: 10,000 orders a day for 90 days (after 28 days of history to learn from) over
20 categories x 33 towns, skewed (Zipf-like weights), with a daily and a weekly rhythm and
day-to-day noise of the city's and of each key's level. Bursts of 10 to 100 extra orders,
spread over 30 to 120 minutes, land in one key each, at any hour: half of them in a key
drawn uniformly (most keys are small), half in a key drawn by volume (busy keys, where a
burst is hardest to see).
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from zhengshu.modules.hotline.insight.spikes import SpikeDetector, SpikeWarning

SEED = 20250303
PER_DAY = 10_000
DAYS = 90
HISTORY_DAYS = 28
CATEGORIES, TOWNS = 20, 33
SIZES = (10, 20, 30, 50, 100)
PER_SIZE = 30
DURATIONS = (30, 60, 120)
TARGET_SIZE, TARGET_MINUTES = 30, 120
START = datetime(2025, 3, 3)  # noqa: DTZ001 - a Monday, naive local; history runs before it


@dataclass(frozen=True)
class Burst:
    key: int
    onset: float  # minutes since START
    duration: int
    size: int
    by_volume: bool


def week_shape() -> np.ndarray:
    """168 hourly factors, mean 1: two daytime peaks, quiet nights, quieter weekends."""
    hours = np.arange(24)
    day = (
        0.12
        + 1.6 * np.exp(-(((hours - 10.5) / 2.5) ** 2))
        + 1.3 * np.exp(-(((hours - 15.5) / 2.5) ** 2))
        + 0.5 * np.exp(-(((hours - 20.0) / 2.0) ** 2))
    )
    weekday = np.array([1.05, 1.0, 1.0, 1.0, 1.0, 0.7, 0.6])
    shape: np.ndarray = (weekday[:, None] * day[None, :]).ravel()
    return shape / float(shape.mean())


def stream(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background orders from -HISTORY_DAYS to DAYS: (minutes since START, key), sorted;
    and the keys' shares."""
    cat = 1.0 / np.arange(1, CATEGORIES + 1) ** 0.8
    town = 1.0 / np.arange(1, TOWNS + 1) ** 0.5
    share = np.outer(cat / cat.sum(), town / town.sum()).ravel()
    n_keys = share.size
    total_days = HISTORY_DAYS + DAYS
    shape = week_shape()
    hours = np.arange(total_days * 24)
    how = hours % 168  # START - HISTORY_DAYS is a Monday too (28 days)
    city = rng.lognormal(0.0, 0.05, total_days)[hours // 24]
    key_noise = rng.lognormal(0.0, 0.10, (total_days, n_keys))[hours // 24]
    rate = (PER_DAY / 24.0) * shape[how][:, None] * city[:, None] * share[None, :] * key_noise
    counts = rng.poisson(rate)
    hour_idx, key_idx = np.nonzero(counts)
    reps = counts[hour_idx, key_idx]
    hour_of = np.repeat(hour_idx, reps)
    keys = np.repeat(key_idx, reps)
    minutes = (hour_of - HISTORY_DAYS * 24) * 60.0 + rng.uniform(0.0, 60.0, hour_of.size)
    order = np.argsort(minutes, kind="stable")
    return minutes[order], keys[order], share


def bursts(rng: np.random.Generator, share: np.ndarray) -> list[Burst]:
    out: list[Burst] = []
    taken: dict[int, list[float]] = {}
    for by_volume in (False, True):
        for size in SIZES:
            for _ in range(PER_SIZE):
                while True:
                    if by_volume:
                        key = int(rng.choice(share.size, p=share))
                    else:
                        key = int(rng.integers(share.size))
                    onset = float(rng.uniform(0.0, (DAYS - 1) * 1440.0))
                    if all(abs(onset - other) > 12 * 60 for other in taken.get(key, [])):
                        break
                taken.setdefault(key, []).append(onset)
                out.append(Burst(key, onset, int(rng.choice(DURATIONS)), size, by_volume))
    return out


def with_bursts(
    minutes: np.ndarray, keys: np.ndarray, injected: list[Burst], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    extra_t = np.concatenate([b.onset + rng.uniform(0, b.duration, b.size) for b in injected])
    extra_k = np.concatenate([np.full(b.size, b.key) for b in injected])
    all_t = np.concatenate([minutes, extra_t])
    all_k = np.concatenate([keys, extra_k])
    order = np.argsort(all_t, kind="stable")
    return all_t[order], all_k[order]


class FixedThreshold:
    """The naive baseline: per key, warn when the last 60 minutes hold at least
    max(8, mean + 3 sd) orders, mean and sd of the key's clock-hour counts in history
    (8 as the detector's minimum excess)."""

    def __init__(self, cooldown: float = 180.0) -> None:
        self.threshold: dict[Hashable, float] = {}
        self.recent: dict[Hashable, deque[float]] = {}
        self.quiet: dict[Hashable, float] = {}
        self.cooldown = cooldown

    def fit(self, minutes: np.ndarray, keys: np.ndarray, n_keys: int) -> None:
        hours = math.ceil((minutes.max() - minutes.min()) / 60.0)
        cells = np.zeros((n_keys, hours + 1))
        np.add.at(cells, (keys, ((minutes - minutes.min()) // 60).astype(int)), 1)
        for key in range(n_keys):
            row = cells[key]
            self.threshold[key] = max(8.0, float(row.mean() + 3 * row.std()))

    def observe(self, key: int, now: float) -> float | None:
        window = self.recent.setdefault(key, deque())
        window.append(now)
        while window[0] <= now - 60.0:
            window.popleft()
        if now < self.quiet.get(key, -math.inf):
            return None
        if len(window) >= self.threshold.get(key, 5.0):
            self.quiet[key] = now + self.cooldown
            return now
        return None


def score(
    warnings: list[tuple[int, float]], injected: list[Burst]
) -> tuple[dict[Burst, float], int]:
    """Each detected burst's delay in minutes (first warning in its key between its onset
    and its end + 2 h), and the number of false warnings (all the others)."""
    by_key: dict[int, list[Burst]] = {}
    for b in injected:
        by_key.setdefault(b.key, []).append(b)
    first: dict[Burst, float] = {}
    false = 0
    for key, at in warnings:
        match = next(
            (
                b
                for b in by_key.get(key, [])
                if b.onset <= at <= b.onset + b.duration + TARGET_MINUTES
            ),
            None,
        )
        if match is None:
            false += 1
        elif match not in first:
            first[match] = at - match.onset
    return first, false


def recall(first: dict[Burst, float], chosen: list[Burst]) -> float:
    hits = sum(1 for b in chosen if first.get(b, math.inf) <= TARGET_MINUTES)
    return hits / len(chosen) if chosen else float("nan")


def report(
    name: str, first: dict[Burst, float], false: int, injected: list[Burst], seconds: float
) -> float:
    target = [b for b in injected if b.size >= TARGET_SIZE]
    delays = [first[b] for b in target if first.get(b, math.inf) <= TARGET_MINUTES]
    median = statistics.median(delays) if delays else float("nan")
    print(
        f"{name:<26} recall(30+, <=2h) {recall(first, target):6.1%}   median time to "
        f"detection {median:5.1f} min   false warnings/day {false / DAYS:6.2f}   "
        f"({seconds:.1f} s)"
    )
    for by_volume, label in ((False, "key drawn uniformly"), (True, "key drawn by volume")):
        chosen = [b for b in injected if b.by_volume == by_volume]
        per_size = "  ".join(
            f"{size}:{recall(first, [b for b in chosen if b.size == size]):.0%}" for size in SIZES
        )
        print(f"{'':<26} {label}, recall within 2 h by size: {per_size}")
    return false / DAYS


def main() -> None:
    rng = np.random.default_rng(SEED)
    minutes, keys, share = stream(rng)
    n_keys = share.size
    history = minutes < 0
    injected = bursts(rng, share)
    eval_t, eval_k = with_bursts(minutes[~history], keys[~history], injected, rng)
    print(
        f"stream: {DAYS} days x {PER_DAY:,} orders/day after {HISTORY_DAYS} days of history; "
        f"{n_keys} keys ({CATEGORIES} categories x {TOWNS} towns), busiest key "
        f"{share.max() * PER_DAY:.0f}/day, median {np.median(share) * PER_DAY:.1f}/day"
    )
    print(
        f"bursts: {len(injected)} (2 x {PER_SIZE} each of {'/'.join(map(str, SIZES))} extra "
        f"orders over {'/'.join(map(str, DURATIONS))} min), {eval_t.size:,} orders in all"
    )

    when = [START + timedelta(minutes=float(m)) for m in minutes[history]]
    detector = SpikeDetector().fit(zip(keys[history].tolist(), when, strict=True))
    stamps = [START + timedelta(minutes=float(m)) for m in eval_t]
    key_list = eval_k.tolist()
    started = time.perf_counter()
    ours: list[SpikeWarning] = detector.run(zip(key_list, stamps, strict=True))
    ours_s = time.perf_counter() - started
    ours_pairs = [(int(str(w.key)), (w.detected_at - START).total_seconds() / 60.0) for w in ours]

    naive = FixedThreshold()
    naive.fit(minutes[history], keys[history], n_keys)
    started = time.perf_counter()
    base_pairs = []
    for key, at in zip(key_list, eval_t.tolist(), strict=True):
        if naive.observe(key, at) is not None:
            base_pairs.append((key, at))
    base_s = time.perf_counter() - started

    first, false = score(ours_pairs, injected)
    ours_fpd = report("SpikeDetector (seasonal)", first, false, injected, ours_s)
    onset_err = []
    for w in ours:
        at = (w.detected_at - START).total_seconds() / 60.0
        for b in injected:
            if b.key == w.key and b.onset <= at <= b.onset + b.duration + TARGET_MINUTES:
                onset_err.append(abs((w.onset - START).total_seconds() / 60.0 - b.onset))
    if onset_err:
        print(f"{'':<26} onset estimate: median error {statistics.median(onset_err):.1f} min")
    first_b, false_b = score(base_pairs, injected)
    base_fpd = report("fixed threshold (naive)", first_b, false_b, injected, base_s)
    ratio = base_fpd / ours_fpd if ours_fpd else math.inf
    print(f"ratio (false warnings per day, baseline / ours): {ratio:.1f}x")


if __name__ == "__main__":
    main()
