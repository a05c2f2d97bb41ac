"""Prometheus metrics of one worker process, read from its `CrawlCounters` at scrape time.

Workers update only their counters (`workers.progress`); this collector turns them into
Prometheus families when scraped, so a fetch costs no metric-library call at all. Each worker
process serves its own endpoint (`--metrics-port`; worker i of a machine on port + i):

    crawl_fetches_total{status_class="2xx"}       fetches by final status class (or "error")
    crawl_fetch_results_total{result="done"}      done / failed / retried / skipped
    crawl_body_bytes_total                        body bytes received
    crawl_fetch_duration_seconds_bucket{le=...}   fetch latency histogram (+ _sum, _count)
    crawl_queue_depth                             frontier backlog last seen by this worker
    crawl_in_flight                               fetches running now
    crawl_worker{worker=..., job=...}             1, to join on
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from workers.progress import LATENCY_BUCKETS, STATUS_CLASSES, CrawlCounters, FetchResult


def metrics_port_for(base: int | None, worker_index: int) -> int | None:
    """The metrics port of the `worker_index`-th worker process of a machine (None: no metrics;
    0: any free port for each)."""
    if base is None:
        return None
    return 0 if base == 0 else base + worker_index


class CountersCollector(Collector):
    """Prometheus families computed from a `CrawlCounters` when scraped."""

    def __init__(self, counters: CrawlCounters, *, worker: str = "0", job: str = "") -> None:
        self.counters = counters
        self.worker = worker
        self.job = job

    def collect(self) -> Iterator[Metric]:
        # Read once: the event loop thread keeps updating while the scrape thread reads.
        snapshot = self.counters.snapshot()
        fetches = CounterMetricFamily(
            "crawl_fetches", "Fetches by final HTTP status class", labels=["status_class"]
        )
        for name, count in zip(STATUS_CLASSES, snapshot.status_classes, strict=True):
            fetches.add_metric([name], count)
        yield fetches
        results = CounterMetricFamily(
            "crawl_fetch_results", "Fetch outcomes as the frontier records them", labels=["result"]
        )
        for result in FetchResult:
            results.add_metric([result.value], getattr(snapshot, result.value))
        yield results
        yield CounterMetricFamily(
            "crawl_body_bytes", "Response body bytes received", value=snapshot.bytes
        )
        cumulative, buckets = 0, []
        for bound, count in zip(
            (*LATENCY_BUCKETS, float("inf")), snapshot.latency_buckets, strict=True
        ):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "crawl_fetch_duration_seconds",
            "Time from request to the end of the body",
            buckets=buckets,
            sum_value=snapshot.latency_sum,
        )
        yield GaugeMetricFamily(
            "crawl_queue_depth", "URLs waiting in the frontier, as last seen", value=snapshot.queued
        )
        yield GaugeMetricFamily("crawl_in_flight", "Fetches running now", value=snapshot.in_flight)
        info = GaugeMetricFamily("crawl_worker", "This worker process", labels=["worker", "job"])
        info.add_metric([self.worker, self.job], 1)
        yield info


@dataclass(slots=True)
class MetricsServer:
    """A running metrics endpoint; `close()` stops it and frees the port."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def metrics_registry(
    counters: CrawlCounters, *, worker: str = "0", job: str = ""
) -> CollectorRegistry:
    """A registry of its own (not the global one) holding this worker's metrics."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(CountersCollector(counters, worker=worker, job=job))
    return registry


def serve_metrics(
    counters: CrawlCounters,
    port: int,
    *,
    address: str = "0.0.0.0",
    worker: str = "0",
    job: str = "",
) -> MetricsServer:
    """Serve `counters` as Prometheus text on http://address:port/metrics (port 0: a free one).

    Raises OSError (e.g. EADDRINUSE) when the port cannot be bound.
    """
    registry = metrics_registry(counters, worker=worker, job=job)
    server, thread = start_http_server(port, addr=address, registry=registry)
    return MetricsServer(server, thread)
