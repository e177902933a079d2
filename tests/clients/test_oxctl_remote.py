"""`oxctl HOST COMMAND` end to end: real QUIC on 127.0.0.1 (random ports), the real ControlServer
and handler, and a recording fake RouterApi in a background event loop (pure tier)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clients.keys import keygen
from clients.oxctl import main
from oxwrtd.control import acl as aclmod
from oxwrtd.control.handler import make_handler
from oxwrtd.control.identity import ServerIdentity
from oxwrtd.control.server import ControlServer
from schema import wire
from tests.control.fake_api import GOOD_BACKUP, PUBLIC_TOML, T0, FakeApi, tarball


class Result:
    def __init__(self, code: int, out: bytes, err: str) -> None:
        self.code, self.raw, self.err = code, out, err

    @property
    def out(self) -> str:
        return self.raw.decode()

    def json(self) -> Any:
        return json.loads(self.out)


class Router:
    """A control server on a random loopback port with a fake api, in its own thread."""

    def __init__(self, tmp: Path) -> None:
        self.api = FakeApi()
        self.identity = ServerIdentity(os.urandom(32))
        self.key_file = tmp / "alice.key"
        self.public = keygen(self.key_file)
        self.stranger_file = tmp / "mallory.key"
        keygen(self.stranger_file)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = self._in_loop(self._start())

    def _in_loop(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _start(self) -> int:
        table, problems = aclmod.build([("alice", self.public)], None)
        assert problems == []
        self.server = ControlServer(self.identity, table, make_handler(self.api))
        return (await self.server.listen("127.0.0.1", 0))[1]

    async def _stop(self) -> None:
        self.server.close()
        await asyncio.sleep(0.01)

    def close(self) -> None:
        self._in_loop(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def run(self, *args: str, key: Path | None = None, stdin_tty: bool = False) -> Result:
        argv = [
            "--key",
            str(key or self.key_file),
            "--server-key",
            self.identity.public_hex,
            f"127.0.0.1:{self.port}",
            *args,
        ]
        return oxctl(argv)


def oxctl(argv: list[str], tty: bool = False) -> Result:
    out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
    out = _Tty(out_bytes) if tty else io.TextIOWrapper(out_bytes, encoding="utf-8")
    err = io.TextIOWrapper(err_bytes, encoding="utf-8")
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(argv)
    finally:
        sys.stdout, sys.stderr = saved
        out.flush()
        err.flush()
    return Result(code, out_bytes.getvalue(), err_bytes.getvalue().decode())


class _Tty(io.TextIOWrapper):
    def __init__(self, raw: io.BytesIO) -> None:
        super().__init__(raw, encoding="utf-8")

    def isatty(self) -> bool:
        return True


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    r = Router(tmp_path)
    try:
        yield r
    finally:
        r.close()


def only_call(router: Router) -> tuple[str, dict[str, Any]]:
    assert len(router.api.calls) == 1, router.api.calls
    return router.api.calls[0]


# ---------------------------------------------------------------- reads


def test_status_prints_a_dashboard_and_json(router: Router) -> None:
    text = router.run("status")
    assert text.code == 0, text.err
    assert "supervisor uptime: 1h02m" in text.out
    assert "wan: 203.0.113.7/24 via 203.0.113.1 [active=wan]" in text.out
    assert "dns   running  812" in text.out
    assert "↳ no route" in text.out
    doc = router.run("--json", "status").json()
    assert doc["firewall_rules"] == 42
    assert [s["name"] for s in doc["services"]] == ["dns", "ntp"]
    assert router.run("status", "--json").json() == doc  # --json after the command too


def test_get_prints_the_value_and_a_refusal_exits_1(router: Router) -> None:
    ok = router.run("get", "hostname")
    assert (ok.code, ok.out) == (0, "lab-router\n")
    assert router.run("--json", "get", "hostname").json() == {
        "key": "hostname",
        "value": "lab-router",
    }
    missing = router.run("get", "nope")
    assert missing.code == 1
    assert "error: unknown key 'nope'; try `hostname`" in missing.err
    as_json = router.run("--json", "get", "nope")
    assert as_json.code == 1
    assert as_json.json()["code"] == "not-found"


def test_log_and_rollback_list_are_tables_and_json(router: Router) -> None:
    log = router.run("log")
    assert log.code == 0
    lines = log.out.splitlines()
    assert lines[0].split() == ["REV", "STATUS", "TIME", "AUTHOR", "COMMENT"]
    assert lines[3].split()[:3] == ["*", "r3", "applied"]
    assert "bad dns" in lines[2]
    revs = router.run("--json", "log", "--limit", "2").json()["revisions"]
    assert [r["id"] for r in revs] == [3, 4]
    assert revs[0]["running"] is True
    ring = router.run("--json", "rollback-list").json()["revisions"]
    assert [r["id"] for r in ring] == [1, 3]


def test_show_diff_blame_and_dump_config(router: Router) -> None:
    show = router.run("show", "r2")
    assert show.code == 0 and show.out.startswith("# r2\nhostname")
    assert router.run("--json", "show", "2").json()["revision"] == 2
    diff = router.run("diff", "1", "3")
    assert "+hostname = new" in diff.out
    assert router.run("--json", "diff", "1").json()["to"] is None
    assert router.api.calls[-1] == ("diff", {"old": 1, "new": None})
    blame = router.run("--json", "blame", "hostname").json()
    assert blame == {
        "path": "hostname",
        "revision": 3,
        "time": T0 + 120,
        "author": "alice",
        "comment": "rename",
    }
    assert router.run("blame", "hostname").out.startswith("hostname: r3 by alice at ")
    dump = router.run("dump-config")
    assert dump.code == 0 and "<redacted>" in dump.out
    missing = router.run("show", "9")
    assert missing.code == 1 and "no revision r9" in missing.err
    bad = router.run("show", "latest")
    assert bad.code == 2 and "not a revision id" in bad.err


# ---------------------------------------------------------------- changes


def test_set_is_signed_by_alice_and_reports_revisions(router: Router) -> None:
    result = router.run("--json", "set", "hostname", "r2")
    assert result.code == 0, result.err
    assert result.json() == {
        "lines": ["hostname = r2 (candidate r5; run `reload` to apply)"],
        "running": 3,
        "candidate": 5,
    }
    method, args = only_call(router)
    assert (method, args["key"], args["value"]) == ("set", "hostname", "r2")
    author = args["author"]
    assert author.name == "alice"
    assert author.public_key.hex() == router.public
    assert wire.verify_signature(author.public_key, author.request, author.signature)
    header = len(wire.SIGNING_DOMAIN) + 32 + 32  # domain, server key, connection nonce
    counter, request = author.request[header : header + 8], author.request[header + 8 :]
    assert counter == (1).to_bytes(8, "big")
    signed = wire.decode_request(request)  # the value is signed as a commitment, not in clear
    assert isinstance(signed, wire.Set) and signed.key == "hostname"
    assert signed.value.startswith(wire.COMMIT_PREFIX)
    assert author.committed == frozenset({"value"})


def test_config_push_sends_the_pair_comment_and_base(router: Router, tmp_path: Path) -> None:
    public, secrets = tmp_path / "oxwrt.toml", tmp_path / "oxwrt.secrets.toml"
    public.write_text(PUBLIC_TOML)
    secrets.write_text("# secrets\n")
    result = router.run(
        "config-push", str(public), "--secrets", str(secrets), "--comment", "dns", "--base", "r3"
    )
    assert (result.code, result.out) == (0, "pushed as candidate r5\n")
    method, args = only_call(router)
    assert method == "push"
    assert (args["public_toml"], args["secrets_toml"]) == (PUBLIC_TOML, "# secrets\n")
    assert (args["comment"], args["base_revision"]) == ("dns", 3)


def test_config_push_checks_files_before_connecting(router: Router, tmp_path: Path) -> None:
    missing = router.run("config-push", str(tmp_path / "nope.toml"))
    assert missing.code == 2 and "nope.toml: no such file" in missing.err
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe")
    assert router.run("config-push", str(binary)).code == 2
    assert router.api.calls == []


def test_a_stale_push_exits_1_with_the_router_message(router: Router, tmp_path: Path) -> None:
    from oxwrtd.control.api import ApiError

    router.api.fail["push"] = ApiError("stale", "r3 is no longer current", ["r4 by bob"])
    public = tmp_path / "oxwrt.toml"
    public.write_text(PUBLIC_TOML)
    result = router.run("config-push", str(public), "--base", "3")
    assert result.code == 1
    assert result.err == "oxctl config-push: error: r3 is no longer current\n  r4 by bob\n"


@pytest.mark.parametrize(
    ("args", "call"),
    [
        (["reload"], ("reload", {"confirm_within": None, "comment": ""})),
        (
            ["reload", "--confirm-within", "2m", "--comment", "new dns"],
            ("reload", {"confirm_within": 120.0, "comment": "new dns"}),
        ),
        (
            ["reload", "--confirm-within", "1m30s"],
            ("reload", {"confirm_within": 90.0, "comment": ""}),
        ),
        (["reload", "--dry-run"], ("dry_run", {})),
        (["confirm"], ("confirm", {})),
        (
            ["rollback", "--confirm", "--to", "1"],
            ("rollback", {"to": 1, "at": None, "comment": ""}),
        ),
        (
            ["rollback", "--confirm", "--at", "2025-11-24T16:00:00+00:00", "--comment", "undo"],
            ("rollback", {"to": None, "at": T0, "comment": "undo"}),
        ),
        (["restart", "dns"], ("restart", {"service": "dns"})),
        (["reset", "--confirm"], ("reset", {})),
        (["reboot", "--confirm"], ("reboot", {"mode": "reboot"})),
    ],
)
def test_each_change_reaches_the_api(router: Router, args: list[str], call: Any) -> None:
    result = router.run(*args)
    assert result.code == 0, result.err
    method, got = only_call(router)
    got.pop("author", None)
    assert (method, got) == call


def test_rollback_at_a_local_time_is_sent_as_unix_seconds(router: Router) -> None:
    assert router.run("rollback", "--confirm", "--at", "2025-11-24T17:00:00").code == 0
    _, args = only_call(router)
    from datetime import datetime

    assert args["at"] == datetime(2025, 11, 24, 17, 0, 0).astimezone().timestamp()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["rollback", "--to", "1"], "refusing to roll back without --confirm"),
        (["rollback", "--confirm", "--to", "1", "--at", "5"], "not allowed with argument"),
        (["rollback", "--confirm", "--at", "yesterday"], "not Unix seconds"),
        (["reset"], "refusing to reset without --confirm"),
        (["reboot"], "refusing to reboot without --confirm"),
        (["restore", "backup.tgz"], "refusing to restore without --confirm"),
        (["reload", "--confirm-within", "soon"], "not a duration"),
        (["reload", "--confirm-within", "0s"], "at least 1s"),
        (["reload", "--dry-run", "--confirm-within", "2m"], "--dry-run changes nothing"),
        (["reload", "--force"], "unrecognized arguments: --force"),
        (["watch", "reload"], "cannot watch 'reload'"),
        (["watch", "logs", "dns"], "cannot watch 'logs'"),
    ],
)
def test_usage_errors_exit_2_and_send_nothing(router: Router, args: list[str], needle: str) -> None:
    result = router.run(*args)
    assert result.code == 2
    assert needle in result.err
    assert router.api.calls == []


# ---------------------------------------------------------------- logs, backup, restore


def test_logs_prints_lines_and_follow_streams(router: Router) -> None:
    result = router.run("logs", "dns")
    assert (result.code, result.out) == (0, "dns up\nquery a.example\n")
    router.api.live_lines = 3
    follow = router.run("--json", "logs", "dns", "-f")
    assert follow.code == 0
    lines = [json.loads(x)["line"] for x in follow.out.splitlines()]
    assert lines == ["dns up", "query a.example", "live 0", "live 1", "live 2"]
    unknown = router.run("logs", "nope")
    assert unknown.code == 1 and "no service 'nope'" in unknown.err


def test_backup_writes_the_raw_tarball_and_refuses_a_terminal(router: Router) -> None:
    result = router.run("backup")
    assert result.code == 0, result.err
    assert result.raw == GOOD_BACKUP
    doc = router.run("--json", "backup").json()
    assert base64.b64decode(doc["data_b64"]) == GOOD_BACKUP
    assert doc["size"] == len(GOOD_BACKUP)
    calls = len(router.api.calls)
    argv = ["--key", str(router.key_file), "--server-key", router.identity.public_hex]
    tty = oxctl([*argv, f"127.0.0.1:{router.port}", "backup"], tty=True)
    assert tty.code == 2 and "redirect it" in tty.err
    assert len(router.api.calls) == calls


def test_a_good_restore_is_applied(router: Router, tmp_path: Path) -> None:
    backup = tmp_path / "router.tar.gz"
    backup.write_bytes(GOOD_BACKUP)
    result = router.run("restore", str(backup), "--confirm")
    assert (result.code, result.out) == (0, "restored as r5 and applied\n")
    method, args = only_call(router)
    assert (method, args["tarball"]) == ("restore", GOOD_BACKUP)


HOSTILE = {
    "traversal": (tarball({"oxwrt/../../etc/cron.d/x": b"* * * * * root sh"}), "oxwrt/../../etc"),
    "absolute": (tarball({"/etc/shadow": b"root::0:"}), "/etc/shadow: absolute path"),
    "no-config": (tarball({"oxwrt/key.ed25519": bytes(32)}), "no oxwrt/oxwrt.toml"),
    "bad-config": (tarball({"oxwrt/oxwrt.toml": b"hostname = 5\n"}), "config in the tarball"),
    "not-gzip": (b"hello", "not a gzip file"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_restore_is_refused_with_nothing_applied(
    router: Router, tmp_path: Path, case: str
) -> None:
    data, needle = HOSTILE[case]
    backup = tmp_path / "evil.tar.gz"
    backup.write_bytes(data)
    result = router.run("restore", str(backup), "--confirm")
    assert result.code == 1
    assert "restore refused, nothing applied" in result.err
    assert needle in result.err
    assert router.api.calls == []


def test_a_symlink_in_a_restore_is_refused(router: Router, tmp_path: Path) -> None:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("oxwrt/oxwrt.toml")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(info)
    backup = tmp_path / "link.tar.gz"
    backup.write_bytes(buf.getvalue())
    result = router.run("--json", "restore", str(backup), "--confirm")
    assert result.code == 1
    assert "oxwrt/oxwrt.toml: is a symbolic link" in result.json()["error"]
    assert router.api.calls == []


# ---------------------------------------------------------------- watch


def test_watch_repeats_a_read_over_one_connection(router: Router) -> None:
    result = router.run("watch", "--interval", "0.05", "--count", "3", "get", "hostname")
    assert result.code == 0, result.err
    assert result.out.count("lab-router\n") == 3
    assert "(tick 3; Ctrl-C to quit)" in result.out
    assert router.api.methods == ["get"] * 3
    docs = router.run("--json", "watch", "--interval", "0.05", "--count", "2").out.splitlines()
    assert [json.loads(d)["firewall_rules"] for d in docs] == [42, 42]


def test_watch_shows_refusals_and_carries_on(router: Router) -> None:
    result = router.run("watch", "--interval", "0.05", "--count", "2", "get", "nope")
    assert result.code == 1
    assert result.err.count("unknown key 'nope'") == 2


# ---------------------------------------------------------------- keys, targets, auth


def test_keygen_writes_a_private_key_and_prints_the_acl_entry(tmp_path: Path) -> None:
    key = tmp_path / "ops.key"
    result = oxctl(["keygen", str(key), "--name", "ops"])
    assert result.code == 0
    public = result.out.splitlines()[0]
    assert len(public) == 64
    assert f'[[control.clients]]\nname = "ops"\nkey = "{public}"' in result.out
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = oxctl(["keygen", str(key)])
    assert again.code == 2 and "refusing to overwrite" in again.err


def test_an_unauthorised_key_exits_3_saying_what_to_check(router: Router) -> None:
    result = router.run("--timeout", "0.5", "status", key=router.stranger_file)
    assert result.code == 3
    assert "[[control.clients]]" in result.err
    assert "clocks agree" in result.err
    assert router.api.calls == []


def test_a_wrong_server_key_exits_3(router: Router) -> None:
    other = ServerIdentity(os.urandom(32)).public_hex
    argv = ["--timeout", "0.5", "--key", str(router.key_file), "--server-key", other]
    result = oxctl([*argv, f"127.0.0.1:{router.port}", "status"])
    assert result.code == 3
    assert other in result.err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--server-key", "00" * 32, "127.0.0.1:99999", "status"], "port from 1 to 65535"),
        (["--server-key", "00" * 32, "[::1", "status"], "expected [IPv6]:PORT"),
        (["--server-key", "zz", "127.0.0.1", "status"], "--server-key: not hexadecimal"),
        (["127.0.0.1"], "required: COMMAND"),
    ],
)
def test_bad_invocations_exit_2(argv: list[str], needle: str, tmp_path: Path) -> None:
    key = tmp_path / "k"
    keygen(key)
    result = oxctl(["--key", str(key), *argv])
    assert result.code == 2
    assert needle in result.err


def test_no_client_key_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SQUIC_CLIENT_KEY", raising=False)
    result = oxctl(["--server-key", "00" * 32, "127.0.0.1", "status"])
    assert result.code == 2
    assert "oxctl keygen FILE" in result.err


def test_offline_commands_still_dispatch_offline(tmp_path: Path) -> None:
    config = tmp_path / "oxwrt.toml"
    config.write_text(PUBLIC_TOML)
    assert oxctl(["check", str(config)]).code == 0
    assert "hostname" in oxctl(["dump-config", str(config)]).out


def test_the_status_dashboard_shows_every_section() -> None:
    from clients.cmd_read import status_text

    reply = wire.StatusReply(
        journal_seq=41,
        journal_head="ab" * 32,
        probation_fallback=6,
        probation_restarts=1,
        active_wan="fibre",
        wans=[
            wire.WanEntry(name="fibre", iface="eth0", priority=10, healthy=True, active=True),
            wire.WanEntry(name="lte", iface="wwan0", priority=20, healthy=False),
        ],
        vpns=[
            wire.VpnEntry(name="mullvad", iface="wgvpn0", healthy=True, endpoint="1.2.3.4:51820")
        ],
        aps=[wire.ApStatus(ssid="home", iface="phy0-ap0", band="5g", channel=36, operstate="up")],
        wg=[
            wire.WgIfaceStatus(
                iface="wg0",
                listen_port=51821,
                peers=[
                    wire.WgPeerStatus(name="laptop", pubkey="k", rx_bytes=2048),
                    wire.WgPeerStatus(name="phone", pubkey="p", last_handshake_secs_ago=95),
                ],
            )
        ],
    )
    text = status_text(reply)
    assert f"journal head:      41:{'ab' * 32}" in text
    assert "health window:     open; a failed probe or a crash reverts to r6, 1 crash(es)" in text
    assert "wan: (no lease)" in text
    assert "fibre  eth0   10    ACTIVE" in text
    assert "lte    wwan0  20    down" in text
    assert "vpn: [active=none (killswitch)]" in text
    assert "mullvad  wgvpn0  0     ready  1.2.3.4:51820" in text
    assert "home  up     phy0-ap0" in text
    assert "wireguard wg0 :51821 (2 peers)" in text
    assert "laptop  never      2.0KiB  0B" in text
    assert "phone   1m35s" in text


def test_watch_reconnects_after_the_router_drops_the_connection(router: Router) -> None:
    answer = router.api.get

    async def drop_on_second_call(key: str) -> str:
        if router.api.methods.count("get") == 1:
            router.api.calls.append(("get", {"key": key}))
            for conn in list(router.server.connections):
                conn.close(reason_phrase="restarting")
            await asyncio.sleep(0.2)
        return await answer(key)

    router.api.get = drop_on_second_call  # type: ignore[method-assign]
    result = router.run("watch", "--interval", "0.05", "--count", "3", "get", "hostname")
    assert result.code == 0, result.err
    assert result.out.count("lab-router\n") == 2
    assert "connection closed by the router: restarting" in result.err
