"""Prometheus metrics for ``/metrics`` (text exposition format), in one registry per app."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


class _Computed(Collector):
    """Metrics computed when scraped (e.g. a queue's depth read from the database)."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "zhengshu_http_requests",
            "HTTP requests served, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "zhengshu_http_request_duration_seconds",
            "Time to serve a request, by route template.",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.logins = Counter(
            "zhengshu_logins",
            "Login attempts by outcome (ok, bad_credentials, rate_limited).",
            ["outcome"],
            registry=self.registry,
        )
        self.db_up = Gauge(
            "zhengshu_database_up",
            "1 when the last health check reached the database.",
            registry=self.registry,
        )

    def add_computed(self, collect: Callable[[], Iterable[Metric]]) -> None:
        """Metric families a module computes at scrape time (``collect`` is called on every
        scrape; it should be one cheap query and give nothing rather than fail)."""
        self.registry.register(_Computed(collect))

    def render(self) -> bytes:
        return generate_latest(self.registry)
