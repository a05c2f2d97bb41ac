"""What crosses process boundaries: Task and settings as msgpack, partitions, job names."""

from __future__ import annotations

import msgpack
import pytest

from crawler.frontier import FrontierConfigError, FrontierSettings, Task
from crawler.frontier.admission import Admitter, partition_of, unpack_body
from crawler.frontier.settings import check_job_name
from crawler.scope import ScopeRules


def test_task_is_a_msgpack_map_of_its_fields_and_round_trips() -> None:
    task = Task(
        id="0" * 32,
        url="http://a.test/ü?q=1",
        depth=3,
        priority=-7,
        attempts=2,
        parent="http://a.test/",
        meta={"referrer": "x", "n": [1, 2.5, None], "raw": b"\x00\xff"},
        host="a.test",
        deadline=1234.5,
    )
    packed = task.pack()
    fields = msgpack.unpackb(packed, raw=False)
    assert {"id", "url", "depth", "priority", "attempts", "parent", "meta"} <= set(fields)
    assert Task.unpack(packed) == task


def test_unpacking_something_else_fails_cleanly() -> None:
    for junk in (msgpack.packb([1, 2]), msgpack.packb({"url": "x"})):
        with pytest.raises(ValueError, match="not a packed Task"):
            Task.unpack(junk)


def test_stored_rows_unpack_to_the_task_that_was_admitted() -> None:
    admitter = Admitter(FrontierSettings())
    (row,), rejected, hosts = admitter.seeds(["HTTP://A.test:80/x/../y#f"])
    assert (rejected, hosts) == ([], {"a.test"})
    task = unpack_body(row.fp, row.body, host=row.host, attempts=0)
    assert (task.url, task.id, task.host, task.depth) == ("http://a.test/y", row.fp.hex(),
                                                          "a.test", 0)  # fmt: skip
    (link,), _ = admitter.links(task, ["http://a.test/z"])
    child = unpack_body(link.fp, link.body, host=link.host, attempts=0)
    assert (child.depth, child.parent) == (1, "http://a.test/y")


def test_settings_round_trip_with_scope() -> None:
    settings = FrontierSettings(
        lease_seconds=5,
        per_host_limit=3,
        per_host_delay=0.5,
        dedupe="bloom",
        bloom_error_rate=0.001,
        partitions=8,
        sort_query=True,
        scope=ScopeRules(allowed_domains=("a.test",), exclude=(r"\.pdf$",), max_depth=4),
    )
    assert FrontierSettings.unpack(settings.pack()) == settings


def test_a_joined_job_keeps_the_settings_it_was_created_with() -> None:
    stored = FrontierSettings(partitions=8, dedupe="bloom", sort_query=True)
    wanted = FrontierSettings(partitions=2, dedupe="exact", per_host_limit=9)
    merged = wanted.merged_with_stored(stored)
    assert (merged.partitions, merged.dedupe, merged.sort_query) == (8, "bloom", True)
    assert merged.per_host_limit == 9  # not job-defining: the newer value wins


@pytest.mark.parametrize(
    "change",
    [
        {"lease_seconds": 0},
        {"max_attempts": 0},
        {"per_host_limit": 0},
        {"per_host_delay": -1},
        {"backoff_max": 0.5, "backoff_base": 1},
        {"dedupe": "fuzzy"},
        {"bloom_error_rate": 0.7},
        {"partitions": 0},
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(change: dict[str, object]) -> None:
    with pytest.raises(FrontierConfigError, match=next(iter(change))):
        FrontierSettings(**change)  # type: ignore[arg-type]


def test_job_names_must_fit_in_keys_and_hash_tags() -> None:
    assert check_job_name("crawl-2024.v1_b") == "crawl-2024.v1_b"
    for bad in ("", "a b", "a{b}", "a/b", "-lead", "x" * 101):
        with pytest.raises(FrontierConfigError, match="bad job name"):
            check_job_name(bad)


def test_partition_of_a_host_is_stable_and_spread() -> None:
    hosts = [f"h{i}.test" for i in range(4000)]
    counts = [0] * 16
    for host in hosts:
        p = partition_of(host, 16)
        assert p == partition_of(host, 16)
        counts[p] += 1
    assert min(counts) > 4000 / 16 * 0.7, counts
    assert partition_of("any.test", 1) == 0
    # fixed forever (blake2b of the host): a change would split the state of existing jobs
    assert [partition_of(h, 16) for h in ("a.test", "b.test", "example.com")] == [7, 12, 6]
    assert [partition_of(h, 1000) for h in ("a.test", "b.test", "example.com")] == [239, 636, 710]
