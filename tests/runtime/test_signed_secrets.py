"""Secrets pushed, set or restored over the control plane are journaled with a signature anyone
can re-check offline, and never in clear: the real client, server and handler on loopback, a
Runtime over the fake kernel, and the LMDB journal whose data file is searched byte for byte."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from nacl.signing import SigningKey

from clients.transport import Session, connect
from journal.lmdb import LmdbStore
from journal.verify import verify
from oxwrtd.control import acl as aclmod
from oxwrtd.control.handler import make_handler
from oxwrtd.control.identity import ServerIdentity
from oxwrtd.control.server import ControlServer
from oxwrtd.eventlog import EventLog
from oxwrtd.runtime import Runtime
from oxwrtd.shell.dataplane import Dataplane
from oxwrtd.shell.fake_netlink import FakeNetlink
from oxwrtd.shell.fake_nft import FakeNft
from schema import wire
from schema.codec import decode
from schema.events import ConfigProposed, signature_problem, withheld
from tests.runtime.test_runtime import KEY, public, secrets

SECRET = "hunter2-unique-xyz"
MAP_SIZE = 1 << 24  # 16 MiB: a small data file to search


class Router:
    """A Runtime journaling to LMDB behind the real control server, and alice's key."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "etc"
        self.dir.mkdir()
        (self.dir / "oxwrt.toml").write_text(public())
        (self.dir / "oxwrt.secrets.toml").write_text(secrets("first passphrase"))
        (self.dir / "oxwrt.secrets.toml").chmod(0o600)
        self.journal = tmp / "journal"
        self.store = LmdbStore(self.journal, map_size=MAP_SIZE)
        kernel = FakeNetlink()
        kernel.add_device("lan0")
        self.rt = Runtime(
            events=EventLog(self.store),
            dataplane=Dataplane(kernel, FakeNft()),
            config_dir=self.dir,
            device_key=KEY,
            software="test",
        )
        self.rt.boot()
        self.identity = ServerIdentity(os.urandom(32))
        self.seed = os.urandom(32)

    def data_file(self) -> bytes:
        return (self.journal / "data.mdb").read_bytes()

    def proposals(self) -> list[ConfigProposed]:
        events = (decode(r.tag, r.version, r.payload) for r in self.store.records())
        return [e for e in events if isinstance(e, ConfigProposed)]

    def run(self, scenario: Callable[[Session], Awaitable[None]]) -> None:
        async def serve() -> None:
            acl, problems = aclmod.build(
                [("alice", bytes(SigningKey(self.seed).verify_key).hex())], None
            )
            assert problems == []
            server = ControlServer(self.identity, acl, make_handler(self.rt))
            _, port = await server.listen("127.0.0.1", 0)
            try:
                session = await connect(
                    "127.0.0.1", port, client_seed=self.seed, server_key=self.identity.public_key
                )
                async with session:
                    await scenario(session)
            finally:
                server.close()
                await asyncio.sleep(0)

        asyncio.run(serve())

    def close(self) -> None:
        self.rt.kernel.shutdown()
        self.store.close()


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    r = Router(tmp_path)
    try:
        yield r
    finally:
        r.close()


def assert_verifiable(proposal: ConfigProposed, signer: bytes) -> None:
    """Signed by `signer`, with the signed bytes stored, and the signature checks offline."""
    assert proposal.by is not None
    assert proposal.by.public_key == signer
    assert proposal.by.request != b"" and not withheld(proposal.by)
    assert signature_problem(proposal.by) is None


def test_a_push_with_secrets_is_journaled_verifiable_and_never_in_clear(router: Router) -> None:
    alice = bytes(SigningKey(router.seed).verify_key)
    before = verify(router.store).signed

    async def scenario(s: Session) -> None:
        push = wire.ConfigPush(toml=public(host="r2"), secrets=secrets(SECRET), comment="pw")
        reply = await s.call(push)
        assert isinstance(reply, wire.Value), reply
        assert reply.candidate is not None
        assert router.rt.state.revisions[reply.candidate].author == "alice"

    router.run(scenario)
    (proposal,) = [p for p in router.proposals() if p.comment == "pw"]
    assert_verifiable(proposal, alice)
    assert proposal.by is not None and SECRET.encode() not in proposal.by.request
    report = verify(router.store)
    assert report.ok, report.problem
    assert report.signed == before + 1  # counted as checked, not as withheld
    assert SECRET.encode() not in router.data_file()


def test_set_of_a_secret_and_a_restore_are_verifiable_and_never_in_clear(router: Router) -> None:
    alice = bytes(SigningKey(router.seed).verify_key)
    sent: list[str] = []

    async def scenario(s: Session) -> None:
        for passphrase in (SECRET, "another passphrase"):
            reply = await s.call(wire.Set(key="wifi.home.passphrase", value=passphrase))
            assert isinstance(reply, wire.Value), reply
            assert isinstance(await s.call(wire.Reload()), wire.Value)
            if not sent:  # a backup holding SECRET in clear (gzipped), restored below
                sent.append(base64.b64encode(await router.rt.backup()).decode())
        reply = await s.call(wire.Restore(data_b64=sent[0], confirm=True))
        assert isinstance(reply, wire.Value), reply

    router.run(scenario)
    signed = [p for p in router.proposals() if p.by is not None]
    assert [p.comment for p in signed] == ["set wifi.home.passphrase"] * 2 + ["restore from backup"]
    for proposal in signed:
        assert_verifiable(proposal, alice)
    assert SECRET in (router.dir / "oxwrt.secrets.toml").read_text()  # it was applied
    data = router.data_file()
    assert SECRET.encode() not in data
    assert sent[0][:64].encode() not in data  # nor the tarball


def test_a_tampered_opening_is_refused_and_nothing_is_journaled(router: Router) -> None:
    head, candidate = router.store.head(), router.rt.state.candidate

    async def scenario(s: Session) -> None:
        nonce = await s.signing_nonce()
        push = wire.ConfigPush(toml=public(host="r3"), secrets=secrets(SECRET))
        envelope = wire.sign_request(push, router.seed, router.identity.public_key, nonce, 99)
        forged = wire.Opening(salt=envelope.openings["secrets"].salt, value=secrets("evil-pw-1"))
        bad = msgspec.structs.replace(envelope, openings={"secrets": forged})
        reply = [f async for f in s.stream_raw(wire.encode(bad))]
        assert isinstance(reply[-1], wire.Err)
        assert reply[-1].code == "signature_invalid"
        assert "do not match the signed commitment for field secrets" in reply[-1].message

    router.run(scenario)
    assert router.store.head() == head
    assert router.rt.state.candidate == candidate
    assert b"evil-pw-1" not in router.data_file()
