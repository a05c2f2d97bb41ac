"""Prometheus metrics: scraped over HTTP from a worker endpoint, read by the official parser."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from workers.metrics import MetricsServer, metrics_port_for, metrics_registry, serve_metrics
from workers.progress import CrawlCounters, FetchResult


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def counters() -> CrawlCounters:
    return CrawlCounters()


@pytest.fixture
def endpoint(counters: CrawlCounters) -> Iterator[MetricsServer]:
    server = serve_metrics(counters, 0, address="127.0.0.1", worker="2", job="demo")
    try:
        yield server
    finally:
        server.close()


def test_fetches_by_status_class_bytes_and_latency_are_scraped(
    counters: CrawlCounters, endpoint: MetricsServer
) -> None:
    for status, seconds in ((200, 0.02), (200, 0.3), (404, 0.04), (503, 7.0)):
        counters.fetch_started("127.0.0.1:8001")
        counters.add_bytes(1000)
        result = FetchResult.RETRIED if status == 503 else FetchResult.DONE
        counters.fetch_finished("127.0.0.1:8001", result, status=status, seconds=seconds)
    counters.fetch_started("127.0.0.1:8001")
    counters.fetch_finished("127.0.0.1:8001", FetchResult.RETRIED, status=None, seconds=60)
    samples = scrape(endpoint.port)
    assert samples[("crawl_fetches_total", (("status_class", "2xx"),))] == 2
    assert samples[("crawl_fetches_total", (("status_class", "4xx"),))] == 1
    assert samples[("crawl_fetches_total", (("status_class", "5xx"),))] == 1
    assert samples[("crawl_fetches_total", (("status_class", "error"),))] == 1
    assert samples[("crawl_fetch_results_total", (("result", "retried"),))] == 2
    assert samples[("crawl_body_bytes_total", ())] == 4000
    assert samples[("crawl_fetch_duration_seconds_bucket", (("le", "0.05"),))] == 2
    assert samples[("crawl_fetch_duration_seconds_bucket", (("le", "0.5"),))] == 3
    assert samples[("crawl_fetch_duration_seconds_bucket", (("le", "60.0"),))] == 5
    assert samples[("crawl_fetch_duration_seconds_bucket", (("le", "+Inf"),))] == 5
    assert samples[("crawl_fetch_duration_seconds_count", ())] == 5
    assert samples[("crawl_fetch_duration_seconds_sum", ())] == pytest.approx(67.36)


def test_queue_depth_and_in_flight_are_gauges_read_at_scrape_time(
    counters: CrawlCounters, endpoint: MetricsServer
) -> None:
    counters.set_queued(5000)
    counters.fetch_started("a")
    counters.fetch_started("b")
    first = scrape(endpoint.port)
    counters.set_queued(4990)
    counters.fetch_finished("a", FetchResult.DONE, status=200, seconds=0.1)
    second = scrape(endpoint.port)
    assert (first[("crawl_queue_depth", ())], first[("crawl_in_flight", ())]) == (5000, 2)
    assert (second[("crawl_queue_depth", ())], second[("crawl_in_flight", ())]) == (4990, 1)


def test_the_worker_is_labelled(endpoint: MetricsServer) -> None:
    samples = scrape(endpoint.port)
    assert samples[("crawl_worker", (("job", "demo"), ("worker", "2")))] == 1


def test_two_workers_in_one_process_do_not_share_a_registry() -> None:
    one, two = CrawlCounters(), CrawlCounters()
    one.add_bytes(5)
    assert metrics_registry(one).get_sample_value("crawl_body_bytes_total") == 5
    assert metrics_registry(two).get_sample_value("crawl_body_bytes_total") == 0


def test_closing_frees_the_port(counters: CrawlCounters) -> None:
    server = serve_metrics(counters, 0, address="127.0.0.1")
    port = server.port
    server.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    again = serve_metrics(counters, port, address="127.0.0.1")
    again.close()


def test_a_taken_port_is_an_os_error(counters: CrawlCounters, endpoint: MetricsServer) -> None:
    with pytest.raises(OSError):
        serve_metrics(counters, endpoint.port, address="127.0.0.1")


def test_each_worker_of_a_machine_gets_its_own_port() -> None:
    assert [metrics_port_for(9100, index) for index in range(3)] == [9100, 9101, 9102]
    assert metrics_port_for(None, 1) is None
    assert metrics_port_for(0, 3) == 0
