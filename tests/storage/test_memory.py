"""Bodies stream: a 1 GiB download keeps the client process's peak RSS under 100 MB."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.storage import conftest
from tests.storage.origin import Body, Origin, Resource

GiB = 1 << 30
RSS_LIMIT = 100 * 1000 * 1000
_REPO = Path(__file__).resolve().parents[2]

CLIENT = textwrap.dedent(
    """
    import asyncio, importlib, json, sys
    from storage import Store, download
    from tests.support.memory import peak_rss

    async def main(url, out, module, warc):
        session_class = importlib.import_module(module).ClientSession
        async with session_class() as session:
            with Store(out, writer_id="mem", warc=warc == "warc") as store:
                record = await download(session, url, store)
        print(json.dumps({"sha256": record.sha256, "size": record.size,
                          "outcome": record.outcome, "peak_rss": peak_rss()}))

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def run_client(url: str, out: Path, warc: bool) -> dict[str, object]:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, url, str(out), conftest.SESSION_MODULE,
        "warc" if warc else "plain",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(_REPO),
    )
    stdout, stderr = await child.communicate()
    assert child.returncode == 0, stderr.decode()[-3000:]
    return json.loads(stdout)


@pytest.mark.slow
async def test_one_gib_body_streams_to_disk_in_flat_memory(origin: Origin, tmp_path: Path):
    body = Body(GiB, seed=40)
    origin.resources["/huge.bin"] = Resource(body)
    result = await run_client(origin.url("/huge.bin"), tmp_path / "out", warc=False)
    assert result["outcome"] == "stored" and result["size"] == GiB
    assert result["sha256"] == body.sha256()
    assert result["peak_rss"] < RSS_LIMIT, f"peak RSS {result['peak_rss'] / 1e6:.1f} MB"


@pytest.mark.slow
async def test_body_streams_into_the_warc_in_flat_memory(origin: Origin, tmp_path: Path):
    body = Body(256 << 20, seed=41)
    origin.resources["/big.bin"] = Resource(body)
    result = await run_client(origin.url("/big.bin"), tmp_path / "out", warc=True)
    assert result["sha256"] == body.sha256()
    assert result["peak_rss"] < RSS_LIMIT, f"peak RSS {result['peak_rss'] / 1e6:.1f} MB"
    (warc,) = (tmp_path / "out" / "warc").iterdir()
    assert warc.stat().st_size > body.size
