"""The probe runner: the DNS client against a resolver on loopback that answers, refuses, stays
silent or is absent; the process bound; every probe kind turned into a HealthProbed fact."""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from oxwrtd.core.health import ProbeSpec
from oxwrtd.shell.probes import Probes, resolve_a, run_command


class Resolver:
    """A UDP DNS server on 127.0.0.1 answering every query with `rcode` and `answers` records."""

    def __init__(self, rcode: int = 0, answers: int = 1, silent: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.rcode, self.answers, self.silent = rcode, answers, silent
        self.names: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                return
            labels, i = [], 12
            while query[i]:
                labels.append(query[i + 1 : i + 1 + query[i]].decode())
                i += 1 + query[i]
            self.names.append(".".join(labels))
            if self.silent:
                continue
            question = query[12 : i + 5]
            answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 7])
            # a stray datagram with another id first: the client must wait for its own
            self.sock.sendto(struct.pack("!6H", query[0] ^ 0xFF, 0x8180, 1, 0, 0, 0), peer)
            header = struct.pack(
                "!6H", *struct.unpack("!H", query[:2]), 0x8180 | self.rcode, 1, self.answers, 0, 0
            )
            self.sock.sendto(header + question + answer * self.answers, peer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def resolver() -> Iterator[Resolver]:
    r = Resolver()
    yield r
    r.close()


def test_a_name_that_resolves(resolver: Resolver) -> None:
    ok, detail = resolve_a("example.com", "127.0.0.1", resolver.port, 2.0)
    assert ok, detail
    assert resolver.names == ["example.com"] and "1 record(s)" in detail


@pytest.mark.parametrize(
    ("rcode", "answers", "words"), [(3, 0, "NXDOMAIN"), (2, 0, "SERVFAIL"), (0, 0, "no address")]
)
def test_a_name_that_does_not_resolve_says_why(rcode: int, answers: int, words: str) -> None:
    r = Resolver(rcode=rcode, answers=answers)
    try:
        ok, detail = resolve_a("nope.example", "127.0.0.1", r.port, 2.0)
    finally:
        r.close()
    assert not ok and words in detail and "nope.example" in detail


def test_a_silent_resolver_fails_within_the_timeout() -> None:
    r = Resolver(silent=True)
    try:
        ok, detail = resolve_a("example.com", "127.0.0.1", r.port, 0.2)
    finally:
        r.close()
    assert not ok and "no answer" in detail and "0.2 s" in detail


def test_nothing_listening_is_reported() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens there
    ok, detail = resolve_a("example.com", "127.0.0.1", port, 1.0)
    assert not ok and ("nothing answers" in detail or "no answer" in detail)


def test_a_process_that_hangs_is_cut_at_the_bound() -> None:
    code, detail = run_command(["sleep", "5"], 0.2)
    assert code == 124 and "0.2 s" in detail
    code, detail = run_command(["/nonexistent/ping"], 1.0)
    assert code == 127 and "/nonexistent/ping" in detail


def probes(**overrides: object) -> Probes:
    async def no_drift() -> list[str]:
        return []

    args: dict[str, object] = {
        "kernel": no_drift,
        "control": lambda listen: [],
        "services": lambda: {"web": "running", "ntp": "exited"},
    }
    args.update(overrides)
    return Probes(**args)  # type: ignore[arg-type]


def test_each_kind_becomes_a_fact_with_latency_and_detail() -> None:
    async def drifted() -> list[str]:
        return [f"network: change {i}" for i in range(7)]

    p = probes(kernel=drifted, control=lambda listen: [listen[0]])
    specs = [
        ProbeSpec(target="kernel", kind="kernel"),
        ProbeSpec(target="control", kind="control", expect=("10.0.0.1:51820",)),
        ProbeSpec(target="services", kind="services", expect=("web", "ntp", "dns")),
        ProbeSpec(target="wan-gateway", kind="wan-gateway", problem="no WAN has a gateway yet"),
    ]
    got = {r.target: r for r in asyncio.run(p.run(specs))}
    assert not got["kernel"].ok and got["kernel"].detail.endswith("(+2 more)")
    assert got["control"].detail == "not listening on: 10.0.0.1:51820"
    assert got["services"].detail == "not running: ntp (exited); dns (never started)"
    assert got["wan-gateway"].detail == "no WAN has a gateway yet"
    assert all(r.latency_ms is not None and r.latency_ms >= 0 for r in got.values())


def test_ping_goes_through_the_gateway_interface_and_is_bounded() -> None:
    seen: list[tuple[list[str], float]] = []

    def command(argv: list[str], timeout: float) -> tuple[int, str]:
        seen.append((argv, timeout))
        return 1, "From 100.64.0.5 icmp_seq=1 Destination Host Unreachable\n0 received"

    spec = ProbeSpec(target="wan-gateway", kind="wan-gateway", address="100.64.0.1", iface="wan0")
    (result,) = asyncio.run(probes(command=command).run([spec]))
    assert seen == [(["ping", "-c1", "-W2", "-I", "wan0", "100.64.0.1"], 5.0)]
    assert (
        not result.ok and result.detail == "100.64.0.1 via wan0 does not answer a ping (0 received)"
    )


@pytest.mark.skipif(shutil.which("ping") is None, reason="needs ping")
def test_real_ping_of_loopback_and_dns_through_the_runner(resolver: Resolver) -> None:
    specs = [
        ProbeSpec(target="ping:127.0.0.1", kind="ping", address="127.0.0.1"),
        ProbeSpec(
            target="dns:example.com",
            kind="dns",
            name="example.com",
            address="127.0.0.1",
            port=resolver.port,
        ),
    ]
    results = asyncio.run(probes().run(specs))
    assert [r.ok for r in results] == [True, True], results


def test_reaped_command_reports_the_real_exit_status_beside_the_daemons_reaper() -> None:
    """subprocess.run races a waitpid(-1) reaper and may read exit 0 for a failed child; the
    probes' command goes through the reaper instead, so `false` is never healthy."""
    from oxwrtd.shell.probes import reaped_command
    from oxwrtd.shell.reaper import Reaper

    async def scenario() -> list[tuple[int, str]]:
        reaper = Reaper()
        reaper.start()
        try:
            command = reaped_command(reaper, asyncio.get_running_loop())
            results = []
            for argv in (["false"], ["true"], ["sh", "-c", "echo out; exit 3"]) * 5:
                results.append(await asyncio.to_thread(command, argv, 5.0))
            results.append(await asyncio.to_thread(command, ["/no/such/program"], 5.0))
            return results
        finally:
            reaper.stop()

    results = asyncio.run(scenario())
    assert [code for code, _ in results[:3]] == [1, 0, 3] and results[2][1] == "out"
    assert [code for code, _ in results[:15]] == [1, 0, 3] * 5
    assert results[15][0] == 127 and "/no/such/program" in results[15][1]
