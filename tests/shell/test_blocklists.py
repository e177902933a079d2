"""The blocklist refresher against a fake nft and real downloads (file:// and a local HTTP server):
refreshes install one table, failures keep the last good entries, the schedule is honoured."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest

from oxwrtd.core.fw_blocklist import TABLE
from oxwrtd.core.fw_script import Ruleset
from oxwrtd.shell.blocklists import BlocklistRefresher, FetchError, http_fetch
from oxwrtd.shell.nft import NftApplyError
from schema.config import Config


def make(blocklists: list[dict[str, Any]]) -> Config:
    return msgspec.convert(
        {
            "hostname": "r",
            "control": {"listen": ["[::1]:51820"]},
            "networks": [
                {"name": "wan", "type": "wan", "iface": "wan0", "mode": "dhcp"},
                {
                    "name": "lan",
                    "type": "lan",
                    "bridge": "br-lan",
                    "address": "192.168.1.1",
                    "prefix": 24,
                },
            ],
            "firewall": {"zones": [{"name": "wan", "networks": ["wan"]}]},
            "blocklists": blocklists,
        },
        Config,
    )


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeNft:
    def __init__(self) -> None:
        self.applied: list[Ruleset] = []
        self.refuse: str | None = None

    def __call__(self, ruleset: Ruleset) -> None:
        if self.refuse:
            raise NftApplyError(self.refuse)
        self.applied.append(ruleset)

    @property
    def last(self) -> str:
        return self.applied[-1].text


class Lists:
    """A fetch function over bodies held in memory; `fail` makes a URL fail."""

    def __init__(self, bodies: dict[str, bytes]) -> None:
        self.bodies = bodies
        self.fail: set[str] = set()
        self.calls: list[str] = []
        self.threads: set[int] = set()
        self.timeouts: set[float] = set()

    def __call__(self, url: str, timeout: float) -> bytes:
        self.calls.append(url)
        self.threads.add(threading.get_ident())
        self.timeouts.add(timeout)
        if url in self.fail:
            raise FetchError(f"{url}: connection refused")
        return self.bodies[url]


def refresher(
    lists: Callable[[str, float], bytes] = http_fetch,
) -> tuple[BlocklistRefresher, FakeNft, Clock]:
    nft, clock = FakeNft(), Clock()
    return BlocklistRefresher(nft, lists, clock), nft, clock


def test_a_refresh_installs_every_list_in_one_transaction(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("# list a\n192.0.2.0/24\n2001:db8::1\n")
    (tmp_path / "b.txt").write_text("198.51.100.7 ; one host\nnot-an-address\n")
    config = make(
        [
            {"name": "a", "url": (tmp_path / "a.txt").as_uri()},
            {"name": "b", "url": (tmp_path / "b.txt").as_uri(), "zones": ["wan"]},
        ]
    )
    r, nft, _ = refresher()
    asyncio.run(r.step(config))
    assert len(nft.applied) == 1
    text = nft.last
    assert "elements = { 192.0.2.0/24 }" in text
    assert "elements = { 2001:db8::1/128 }" in text
    assert "elements = { 198.51.100.7/32 }" in text
    assert 'iifname "wan0" ip saddr @b_v4 drop' in text
    status = {s.name: s for s in r.status()}
    assert (status["a"].entries, status["b"].entries) == (2, 1)
    assert status["b"].rejected.count == 1
    assert status["a"].last_success == 1000.0
    assert r.apply_error is None


def test_a_failed_fetch_keeps_the_last_good_entries_and_retries() -> None:
    lists = Lists({"http://l/a": b"192.0.2.1\n"})
    r, nft, clock = refresher(lists)
    config = make([{"name": "a", "url": "http://l/a", "refresh_seconds": 600}])
    assert asyncio.run(r.step(config)) == 1600.0
    lists.fail.add("http://l/a")
    clock.now = 1600.0
    assert asyncio.run(r.step(config)) == 1630.0  # first retry after 30 s
    assert "elements = { 192.0.2.1/32 }" in nft.last  # still installed
    (status,) = r.status()
    assert status.entries == 1
    assert status.last_error == "http://l/a: connection refused"
    assert status.last_success == 1000.0
    clock.now = 1630.0
    assert asyncio.run(r.step(config)) == 1690.0  # then 60 s
    lists.fail.clear()
    lists.bodies["http://l/a"] = b"192.0.2.2\n"
    clock.now = 1690.0
    assert asyncio.run(r.step(config)) == 2290.0
    assert "elements = { 192.0.2.2/32 }" in nft.last
    assert r.status()[0].last_error is None


def test_a_list_never_fetched_is_empty_and_reported() -> None:
    lists = Lists({})
    lists.fail.add("http://l/a")
    r, nft, _ = refresher(lists)
    asyncio.run(r.step(make([{"name": "a", "url": "http://l/a"}])))
    assert "set a_v4 {" in nft.last
    assert "elements" not in nft.last
    (status,) = r.status()
    assert status.entries == 0
    assert status.last_success is None
    assert status.last_error == "http://l/a: connection refused"


def test_the_schedule_is_honoured_with_a_manual_clock() -> None:
    lists = Lists({"http://l/a": b"192.0.2.1\n", "http://l/b": b"192.0.2.2\n"})
    r, nft, clock = refresher(lists)
    config = make(
        [
            {"name": "a", "url": "http://l/a", "refresh_seconds": 100},
            {"name": "b", "url": "http://l/b", "refresh_seconds": 30},  # raised to 60
        ]
    )
    assert asyncio.run(r.step(config)) == 1060.0
    assert sorted(lists.calls) == ["http://l/a", "http://l/b"]
    assert threading.get_ident() not in lists.threads  # fetched off the event loop
    assert lists.timeouts == {30.0}
    clock.now = 1059.0
    assert asyncio.run(r.step(config)) == 1060.0
    assert len(lists.calls) == 2  # nothing due: no fetch
    assert len(nft.applied) == 1  # and nothing rewritten
    clock.now = 1060.0
    assert asyncio.run(r.step(config)) == 1100.0
    assert lists.calls[2:] == ["http://l/b"]
    assert len(nft.applied) == 2  # same digest, asked again: nft repairs a deleted table
    clock.now = 1100.0
    asyncio.run(r.step(config))
    assert lists.calls[3:] == ["http://l/a"]


def test_an_oversized_list_is_a_failure_that_keeps_the_last_good_entries() -> None:
    lists = Lists({"http://l/a": b"192.0.2.1\n"})
    r, nft, clock = refresher(lists)
    config = make([{"name": "a", "url": "http://l/a", "refresh_seconds": 60}])
    asyncio.run(r.step(config))
    lists.bodies["http://l/a"] = b"\xff not text"
    clock.now += 60
    asyncio.run(r.step(config))
    assert "elements = { 192.0.2.1/32 }" in nft.last
    assert "not UTF-8" in (r.status()[0].last_error or "")


def test_removing_every_list_deletes_the_table() -> None:
    lists = Lists({"http://l/a": b"192.0.2.1\n"})
    r, nft, _ = refresher(lists)
    asyncio.run(r.step(make([{"name": "a", "url": "http://l/a"}])))
    assert asyncio.run(r.step(make([]))) is None
    assert nft.applied[-1].absent
    assert nft.applied[-1].table == TABLE
    assert r.status() == []


def test_a_new_url_drops_the_old_entries_and_fetches_at_once() -> None:
    lists = Lists({"http://l/a": b"192.0.2.1\n", "http://l/other": b"203.0.113.5\n"})
    r, nft, _ = refresher(lists)
    asyncio.run(r.step(make([{"name": "a", "url": "http://l/a"}])))
    lists.fail.add("http://l/other")
    asyncio.run(r.step(make([{"name": "a", "url": "http://l/other"}])))
    assert "192.0.2.1" not in nft.last  # belonged to the old source
    lists.fail.clear()
    r2, nft2, _ = refresher(lists)
    asyncio.run(r2.step(make([{"name": "a", "url": "http://l/a"}])))
    asyncio.run(r2.step(make([{"name": "a", "url": "http://l/other"}])))
    assert "elements = { 203.0.113.5/32 }" in nft2.last


def test_a_refused_table_is_reported_and_retried() -> None:
    lists = Lists({"http://l/a": b"192.0.2.1\n"})
    r, nft, clock = refresher(lists)
    nft.refuse = "Could not process rule: No such file or directory"
    config = make([{"name": "a", "url": "http://l/a"}])
    assert asyncio.run(r.step(config)) == 1030.0
    assert r.apply_error == nft.refuse
    nft.refuse = None
    clock.now = 1030.0
    asyncio.run(r.step(config))
    assert "elements = { 192.0.2.1/32 }" in nft.last
    assert r.apply_error is None
    assert len(lists.calls) == 1  # the list itself was not fetched again


def test_nothing_is_touched_before_a_config_runs() -> None:
    r, nft, _ = refresher(Lists({}))
    assert asyncio.run(r.step(None)) is None
    assert nft.applied == []


def test_run_follows_the_config_when_woken(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("192.0.2.1\n")
    (tmp_path / "b.txt").write_text("198.51.100.1\n")
    nft = FakeNft()
    r = BlocklistRefresher(nft)
    current = [make([{"name": "a", "url": (tmp_path / "a.txt").as_uri()}])]

    async def scenario() -> None:
        task = asyncio.create_task(r.run(lambda: current[0]))
        await wait_for(lambda: len(nft.applied) == 1)
        assert "192.0.2.1/32" in nft.last
        current[0] = make([{"name": "b", "url": (tmp_path / "b.txt").as_uri()}])
        r.wake()
        await wait_for(lambda: len(nft.applied) == 2)
        assert "198.51.100.1/32" in nft.last
        assert "192.0.2.1" not in nft.last
        task.cancel()

    asyncio.run(scenario())


async def wait_for(cond: Callable[[], bool], limit: float = 10.0) -> None:
    end = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- http_fetch


class Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, Callable[[Any], None]]] = {}

    def do_GET(self) -> None:
        # the client giving up (a cap, a timeout) is what some tests want
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.routes[self.path](self)

    def log_message(self, *args: object) -> None:
        pass


def body(data: bytes, *, length: int | None = None, declare: bool = True) -> Callable[[Any], None]:
    def send(h: Any) -> None:
        h.send_response(200)
        if declare:  # else the body ends when the connection closes (HTTP/1.0)
            h.send_header("Content-Length", str(len(data) if length is None else length))
        h.end_headers()
        h.wfile.write(data)

    return send


def redirect(to: str) -> Callable[[Any], None]:
    def send(h: Any) -> None:
        h.send_response(302)
        h.send_header("Location", to)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return send


def drip(h: Any) -> None:
    h.send_response(200)
    h.end_headers()
    for _ in range(50):
        h.wfile.write(b"192.0.2.1\n")
        h.wfile.flush()
        time.sleep(0.05)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    Handler.routes = {
        "/list": body(b"192.0.2.1\n"),
        "/moved": redirect("/list"),
        "/to-file": redirect("file:///etc/passwd"),
        "/to-ftp": redirect("ftp://127.0.0.1/list"),
        "/big": body(b"x" * 2000, declare=False),
        "/liar": body(b"x" * 10, length=10**9),
        "/drip": drip,
    }
    yield base
    httpd.shutdown()
    httpd.server_close()


def test_http_fetch_reads_a_list_and_follows_http_redirects(server: str) -> None:
    assert http_fetch(f"{server}/list", 5) == b"192.0.2.1\n"
    assert http_fetch(f"{server}/moved", 5) == b"192.0.2.1\n"


def test_http_errors_name_the_url_and_status(server: str) -> None:
    Handler.routes["/missing"] = lambda h: h.send_error(404)
    with pytest.raises(FetchError, match=r"/missing: HTTP 404"):
        http_fetch(f"{server}/missing", 5)


@pytest.mark.parametrize("path", ["/to-file", "/to-ftp"])
def test_redirects_to_other_schemes_are_refused(server: str, path: str) -> None:
    with pytest.raises(FetchError, match=r"(?i)redirect"):
        http_fetch(f"{server}{path}", 5)


def test_bodies_over_the_cap_are_refused(server: str) -> None:
    with pytest.raises(FetchError, match="body exceeds 1,000 bytes"):
        http_fetch(f"{server}/big", 5, max_bytes=1000)
    assert len(http_fetch(f"{server}/big", 5, max_bytes=2000)) == 2000
    with pytest.raises(FetchError, match="body of 1,000,000,000 bytes exceeds"):
        http_fetch(f"{server}/liar", 5, max_bytes=1000)


def test_a_slow_download_is_abandoned_after_the_timeout(server: str) -> None:
    with pytest.raises(FetchError, match=r"took longer than 0\.5 s"):
        http_fetch(f"{server}/drip", 0.5)


def test_a_closed_port_is_a_fetch_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match=f"127.0.0.1:{port}"):
        http_fetch(f"http://127.0.0.1:{port}/list", 2)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.net/list", "only http, https and file"),
        ("gopher://x/list", "only http, https and file"),
        ("file://otherhost/etc/list", "local path"),
        ("file:///nonexistent/list.txt", "No such file"),
    ],
)
def test_other_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(FetchError, match=why):
        http_fetch(url, 1)


def test_file_urls_are_capped_too(tmp_path: Path) -> None:
    (tmp_path / "l").write_bytes(b"1" * 11)
    assert http_fetch((tmp_path / "l").as_uri(), 1, max_bytes=11) == b"1" * 11
    with pytest.raises(FetchError, match="exceeds 10 bytes"):
        http_fetch((tmp_path / "l").as_uri(), 1, max_bytes=10)
