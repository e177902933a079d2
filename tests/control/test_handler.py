"""The RPC handler against a recording fake RouterApi (pure tier: no sockets)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from oxwrtd.control.api import ApiError, Author, RevisionInfo
from oxwrtd.control.handler import MAX_BACKUP_BYTES, MAX_LOG_ROWS, UNSUPPORTED, make_handler
from oxwrtd.control.server import Peer, Signature
from schema import wire
from tests.control.fake_api import GOOD_BACKUP, T0, FakeApi, tarball

KEY = bytes(range(32))
SIG = Signature(signer=KEY, signature=b"s" * 64, signed_bytes=b"signed payload")
READER = Peer(key=KEY, name="alice", address=("127.0.0.1", 4000))
SIGNER = Peer(key=KEY, name="alice", address=("127.0.0.1", 4000), signature=SIG)
ALICE = Author(name="alice", public_key=KEY, request=b"signed payload", signature=b"s" * 64)


def replies(api: FakeApi, request: wire.Request, peer: Peer = SIGNER) -> list[wire.Response]:
    async def collect() -> list[wire.Response]:
        return [r async for r in make_handler(api)(request, peer)]

    return asyncio.run(collect())


def reply(api: FakeApi, request: wire.Request, peer: Peer = SIGNER) -> wire.Response:
    frames = replies(api, request, peer)
    assert len(frames) == 1, frames
    return frames[0]


def test_status_is_the_api_status() -> None:
    api = FakeApi()
    assert reply(api, wire.Status(), READER) == api.status_reply


@pytest.mark.parametrize(
    ("request_", "call", "text"),
    [
        (wire.Get(key="hostname"), ("get", {"key": "hostname"}), "lab-router"),
        (wire.Show(rev=2), ("show", {"revision": 2}), "# r2\n"),
        (wire.Diff(rev1=1, rev2=3), ("diff", {"old": 1, "new": 3}), "--- r1\n+++ r3"),
        (wire.Diff(rev1=1), ("diff", {"old": 1, "new": None}), "--- r1\n+++ r3"),
        (wire.ConfigDump(), ("dump_config", {}), "<redacted>"),
        (wire.ReloadDryRun(), ("dry_run", {}), "dry run: r5"),
    ],
)
def test_reads_map_to_one_api_call(request_: wire.Request, call: Any, text: str) -> None:
    api = FakeApi()
    answer = reply(api, request_, READER)
    assert isinstance(answer, wire.Value)
    assert text in answer.value
    assert api.calls == [call]


def test_log_lists_every_revision_and_limit_keeps_the_newest() -> None:
    api = FakeApi()
    answer = reply(api, wire.Log(), READER)
    assert isinstance(answer, wire.Value) and answer.revisions is not None
    assert [r.id for r in answer.revisions] == [1, 2, 3, 4]
    assert answer.revisions[2].running
    assert "* r3" in answer.value
    limited = reply(api, wire.Log(limit=2), READER)
    assert isinstance(limited, wire.Value)
    assert [r.id for r in limited.revisions or []] == [3, 4]
    none = reply(api, wire.Log(limit=0), READER)
    assert isinstance(none, wire.Value) and none.revisions == []


def test_log_sends_at_most_the_newest_rows_that_fit_a_frame() -> None:
    api = FakeApi()
    api.revision_rows = [
        RevisionInfo(id=i, status="applied", time=T0 + i, author="a" * 64, summary="s" * 100)
        for i in range(1, MAX_LOG_ROWS + 51)
    ]
    answer = reply(api, wire.Log(), READER)
    assert isinstance(answer, wire.Value)
    assert [r.id for r in answer.revisions or []] == list(range(51, MAX_LOG_ROWS + 51))
    assert len(wire.encode(answer)) < wire.MAX_FRAME


def test_rollback_list_offers_only_revisions_that_ran() -> None:
    api = FakeApi()
    answer = reply(api, wire.RollbackList(), READER)
    assert isinstance(answer, wire.Value)
    assert [r.id for r in answer.revisions or []] == [1, 3]
    api.revision_rows = []
    empty = reply(api, wire.RollbackList(), READER)
    assert empty == wire.Value(value="no revision to roll back to yet", revisions=[])


def test_blame_carries_text_and_the_structured_row() -> None:
    answer = reply(FakeApi(), wire.Blame(path="hostname"), READER)
    assert answer == wire.Value(
        value="hostname: r3 by alice at 2025-11-24 16:02:00Z: rename",
        blame=wire.BlameRow(
            path="hostname", revision=3, author="alice", time=T0 + 120, comment="rename"
        ),
    )


@pytest.mark.parametrize(
    ("request_", "method", "args"),
    [
        (wire.Set(key="hostname", value="r2"), "set", {"key": "hostname", "value": "r2"}),
        (
            wire.ConfigPush(toml="x", secrets="s", comment="why", base_revision=3),
            "push",
            {"public_toml": "x", "secrets_toml": "s", "comment": "why", "base_revision": 3},
        ),
        (
            wire.ConfigPush(toml="x"),
            "push",
            {"public_toml": "x", "secrets_toml": None, "comment": "", "base_revision": None},
        ),
        (
            wire.Reload(confirm_within_secs=120, comment="new dns"),
            "reload",
            {"confirm_within": 120.0, "comment": "new dns"},
        ),
        (wire.Reload(), "reload", {"confirm_within": None, "comment": ""}),
        (wire.Confirm(), "confirm", {}),
        (
            wire.Rollback(confirm=True, to=1, comment="undo"),
            "rollback",
            {"to": 1, "at": None, "comment": "undo"},
        ),
        (
            wire.Rollback(confirm=True, at="2025-11-24T16:00:00Z"),
            "rollback",
            {"to": None, "at": T0, "comment": ""},
        ),
        (wire.Restart(service="dns"), "restart", {"service": "dns"}),
        (wire.Reset(confirm=True), "reset", {}),
        (wire.Reboot(confirm=True), "reboot", {"mode": "reboot"}),
    ],
)
def test_mutations_carry_the_signed_author(
    request_: wire.Request, method: str, args: dict[str, Any]
) -> None:
    api = FakeApi()
    answer = reply(api, request_)
    assert isinstance(answer, wire.Value)
    assert api.calls == [(method, {**args, "author": ALICE})]


def test_an_outcome_becomes_lines_and_revisions() -> None:
    answer = reply(FakeApi(), wire.Set(key="hostname", value="r2"))
    assert answer == wire.Value(
        value="hostname = r2 (candidate r5; run `reload` to apply)", running=3, candidate=5
    )


def test_an_unsigned_mutation_never_reaches_the_api() -> None:
    api = FakeApi()
    answer = reply(api, wire.Set(key="hostname", value="x"), READER)
    assert isinstance(answer, wire.Err) and answer.code == "signature_required"
    assert api.calls == []


@pytest.mark.parametrize(
    "request_",
    [
        wire.Rollback(to=1),
        wire.Reset(),
        wire.Reboot(),
        wire.Restore(data_b64=base64.b64encode(GOOD_BACKUP).decode()),
    ],
)
def test_destructive_requests_need_confirm(request_: wire.Request) -> None:
    api = FakeApi()
    answer = reply(api, request_)
    assert isinstance(answer, wire.Err)
    assert answer.code == "confirm_required"
    assert "--confirm" in answer.message
    assert api.calls == []


def test_rollback_refuses_both_to_and_at_and_a_bad_time() -> None:
    api = FakeApi()
    both = reply(api, wire.Rollback(confirm=True, to=1, at="5"))
    assert isinstance(both, wire.Err) and "not both" in both.message
    naive = reply(api, wire.Rollback(confirm=True, at="2025-11-24T16:00:00"))
    assert isinstance(naive, wire.Err) and "no UTC offset" in naive.message
    assert api.calls == []


def test_reload_refuses_a_zero_confirm_window() -> None:
    api = FakeApi()
    answer = reply(api, wire.Reload(confirm_within_secs=0))
    assert isinstance(answer, wire.Err) and answer.code == "bad-request"
    assert api.calls == []


def test_api_error_becomes_err_with_code_and_details() -> None:
    api = FakeApi()
    api.fail["push"] = ApiError("stale", "based on r2 but r3 is current; pull and retry", ["a"])
    answer = reply(api, wire.ConfigPush(toml="x", base_revision=2))
    assert answer == wire.Err(
        message="based on r2 but r3 is current; pull and retry", code="stale", details=["a"]
    )


def test_logs_stream_lines_then_ok() -> None:
    frames = replies(FakeApi(), wire.Logs(service="dns"), READER)
    assert frames == [
        wire.LogLine(line="dns up"),
        wire.LogLine(line="query a.example"),
        wire.Ok(),
    ]
    unknown = replies(FakeApi(), wire.Logs(service="nope"), READER)
    assert unknown == [wire.Err(message="no service 'nope'", code="not-found")]


def test_logs_follow_stops_when_the_client_goes() -> None:
    api = FakeApi()

    async def scenario() -> None:
        replies: AsyncIterator[wire.Response] = make_handler(api)(
            wire.Logs(service="dns", follow=True), READER
        )
        got = [await anext(replies) for _ in range(4)]
        assert got[2] == wire.LogLine(line="live 0")
        await replies.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())
    assert api.followers_cancelled == 1


def test_backup_is_base64_within_the_frame_cap() -> None:
    api = FakeApi()
    answer = reply(api, wire.Backup(), READER)
    assert isinstance(answer, wire.Value)
    assert base64.b64decode(answer.value) == GOOD_BACKUP
    assert len(wire.encode(answer)) <= wire.MAX_FRAME + 4
    api.backup_bytes = bytes(MAX_BACKUP_BYTES)
    assert len(wire.encode(reply(api, wire.Backup(), READER))) <= wire.MAX_FRAME + 4
    api.backup_bytes = bytes(MAX_BACKUP_BYTES + 1)
    too_big = reply(api, wire.Backup(), READER)
    assert isinstance(too_big, wire.Err) and too_big.code == "too-large"


def test_a_valid_restore_reaches_the_api_with_the_raw_tarball() -> None:
    api = FakeApi()
    answer = reply(api, wire.Restore(data_b64=base64.b64encode(GOOD_BACKUP).decode(), confirm=True))
    assert isinstance(answer, wire.Value)
    assert api.calls == [("restore", {"tarball": GOOD_BACKUP, "author": ALICE})]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ("not base64!", "not valid base64"),
        (base64.b64encode(b"plain text").decode(), "not a gzip file"),
        (
            base64.b64encode(tarball({"oxwrt/../../etc/passwd": b"x"})).decode(),
            "oxwrt/../../etc/passwd",
        ),
        (
            base64.b64encode(tarball({"oxwrt/key.ed25519": bytes(32)})).decode(),
            "no oxwrt/oxwrt.toml",
        ),
    ],
)
def test_a_bad_restore_is_refused_before_the_api_sees_it(data: str, needle: str) -> None:
    api = FakeApi()
    answer = reply(api, wire.Restore(data_b64=data, confirm=True))
    assert isinstance(answer, wire.Err)
    assert needle in answer.message
    assert api.calls == []


@pytest.mark.parametrize(
    "request_",
    [
        wire.FwUpdate(size=1, sha256="0" * 64),
        wire.FwApply(confirm=True),
        wire.Collection(collection="zone", action=wire.CrudList()),
        wire.VpnKeyUpload(name="a", private_key_b64="x"),
        wire.WgEnroll(name="a", allowed_ips="10.0.0.2/32", endpoint_host="h"),
    ],
)
def test_unimplemented_requests_say_what_to_do_instead(request_: wire.Request) -> None:
    api = FakeApi()
    answer = reply(api, request_)
    assert isinstance(answer, wire.Err)
    assert answer.code == "unsupported"
    assert answer.message == UNSUPPORTED[type(request_)]
    assert api.calls == []


def test_diag_reaches_the_api_and_its_refusals_come_back_as_errors() -> None:
    api = FakeApi()
    assert reply(api, wire.Diag(name="sysctl", args=["net.ipv4.ip_forward"])) == wire.Value(
        value="sysctl net.ipv4.ip_forward\n"
    )
    assert api.calls == [("diag", {"op": "sysctl", "args": ["net.ipv4.ip_forward"]})]
    answer = reply(api, wire.Diag(name="stall"))
    assert isinstance(answer, wire.Err) and answer.code == "unsupported"


SAMPLES: dict[type, wire.Request] = {
    wire.Get: wire.Get(key="hostname"),
    wire.Set: wire.Set(key="hostname", value="x"),
    wire.Reload: wire.Reload(),
    wire.ReloadDryRun: wire.ReloadDryRun(),
    wire.Confirm: wire.Confirm(),
    wire.Status: wire.Status(),
    wire.Logs: wire.Logs(service="dns"),
    wire.Restart: wire.Restart(service="dns"),
    wire.Reset: wire.Reset(confirm=True),
    wire.Diag: wire.Diag(name="links"),
    wire.FwUpdate: wire.FwUpdate(size=1, sha256="0" * 64),
    wire.FwApply: wire.FwApply(confirm=True),
    wire.Collection: wire.Collection(collection="zone", action=wire.CrudGet(name="lan")),
    wire.ConfigDump: wire.ConfigDump(),
    wire.ConfigPush: wire.ConfigPush(toml="x"),
    wire.VpnKeyUpload: wire.VpnKeyUpload(name="a", private_key_b64="x"),
    wire.Backup: wire.Backup(),
    wire.Restore: wire.Restore(data_b64=base64.b64encode(GOOD_BACKUP).decode(), confirm=True),
    wire.Rollback: wire.Rollback(confirm=True, to=1),
    wire.RollbackList: wire.RollbackList(),
    wire.Reboot: wire.Reboot(confirm=True),
    wire.WgEnroll: wire.WgEnroll(name="a", allowed_ips="10.0.0.2/32", endpoint_host="h"),
    wire.Log: wire.Log(),
    wire.Show: wire.Show(rev=1),
    wire.Diff: wire.Diff(rev1=1),
    wire.Blame: wire.Blame(path="hostname"),
    wire.Signed: wire.Signed(request=b"", key=KEY, signature=bytes(64), counter=1),
}


def test_every_request_kind_gets_exactly_one_terminal_answer() -> None:
    import typing

    assert set(SAMPLES) == set(typing.get_args(wire.Request)), "a request kind has no sample"
    for kind, request in SAMPLES.items():
        frames = replies(FakeApi(), request)
        assert frames, kind
        assert [f.terminal for f in frames] == [False] * (len(frames) - 1) + [True], kind
        final = frames[-1]
        if kind in UNSUPPORTED:
            assert isinstance(final, wire.Err) and final.code == "unsupported"
        elif kind is wire.Signed:
            assert isinstance(final, wire.Err) and final.code == "bad-request"
        else:
            assert not isinstance(final, wire.Err), (kind, final)
