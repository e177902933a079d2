"""The runtime end to end against the fakes: a manual clock, an in-memory journal, a fake kernel.

Asserts on what an operator sees (replies, status, files on disk, the journal) and on what the
fake kernel holds, never on which functions were called.
"""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from journal.memory import MemoryStore
from journal.verify import verify
from oxwrtd.control.api import ApiError, Author
from oxwrtd.eventlog import EventLog
from oxwrtd.runtime import Runtime
from oxwrtd.shell.dataplane import Dataplane
from oxwrtd.shell.fake_netlink import FakeNetlink
from oxwrtd.shell.fake_nft import FakeNft

KEY = bytes(range(32))
OPERATOR = Author(name="alice", public_key=b"\x01" * 32)

PUBLIC = """# my router
hostname = "{host}"

[[networks]]
name = "lan"
type = "lan"
bridge = "br-lan"
members = ["lan0"]
address = "{lan}"
prefix = 24

[[firewall.zones]]
name = "lan"
networks = ["lan"]
default_input = "accept"

[[wifi]]
radio = "phy0"
ssid = "home"
network = "lan"
security = "wpa2"

[[radios]]
phy = "phy0"
channel = 6
band = "2g"

[control]
listen = ["{lan}:51820"]
"""
SECRETS = '[[wifi]]\nssid = "home"\npassphrase = "{pw}"\n'


def public(host: str = "r1", lan: str = "192.168.50.1") -> str:
    return PUBLIC.format(host=host, lan=lan)


def secrets(pw: str = "correct horse battery") -> str:
    return SECRETS.format(pw=pw)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Router:
    """A runtime over fakes that survive a 'restart' (same store, same kernel)."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "etc"
        self.dir.mkdir()
        self.store = MemoryStore()
        self.kernel = FakeNetlink()
        self.kernel.add_device("lan0")
        self.nft = FakeNft()
        self.clock = Clock()
        self.rt = self.start()

    def start(self) -> Runtime:
        return Runtime(
            events=EventLog(self.store, snapshot_every=5),
            dataplane=Dataplane(self.kernel, self.nft),
            config_dir=self.dir,
            device_key=KEY,
            software="test",
            clock=self.clock,
        )

    def write(self, pub: str, sec: str | None = None) -> None:
        (self.dir / "oxwrt.toml").write_text(pub)
        if sec is not None:
            path = self.dir / "oxwrt.secrets.toml"
            path.write_text(sec)
            path.chmod(0o600)

    def addrs(self) -> set[str]:
        return {a.cidr for a in self.kernel.addrs if a.link == "br-lan" and a.version == 4}

    def run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run(coro)


@pytest.fixture
def router(tmp_path: Path) -> Router:
    return Router(tmp_path)


def test_first_boot_adopts_the_files_as_revision_one_and_applies_them(router: Router) -> None:
    router.write(public(), secrets())
    router.rt.boot()
    s = router.rt.state
    assert s.running == 1 and s.revisions[1].source == "boot"
    assert router.addrs() == {"192.168.50.1/24"} and router.kernel.hostname == "r1"
    assert router.nft.installed_digest("inet oxwrt") is not None
    assert router.rt.problems == []


def test_secrets_never_reach_the_journal_in_clear(router: Router) -> None:
    router.write(public(), secrets("s3cret-passphrase"))
    router.rt.boot()
    stored = b"".join(r.payload for r in router.store.records())
    assert b"s3cret-passphrase" not in stored
    assert verify(router.store).ok


def test_broken_files_at_boot_keep_the_last_good_revision(router: Router) -> None:
    router.write(public(), secrets())
    router.rt.boot()
    router.write(public().replace("prefix = 24", "prefix = 33"))
    rt = router.start()  # a reboot with a corrupt oxwrt.toml on disk
    rt.boot()
    assert rt.state.running == 1 and router.addrs() == {"192.168.50.1/24"}
    assert any("prefix" in p for p in rt.problems)
    # the files describe what runs again, and the operator's edit is kept, not destroyed
    assert "prefix = 24" in (router.dir / "oxwrt.toml").read_text()
    (kept,) = router.dir.glob("oxwrt.toml.local-*")
    assert "prefix = 33" in kept.read_text()


def test_sighup_edit_becomes_a_revision_and_files_are_rewritten_on_rollback(
    router: Router,
) -> None:
    router.write(public(), secrets())
    router.rt.boot()
    router.write(public(lan="192.168.60.1"), secrets())
    router.rt.adopt_local_edit()
    assert router.rt.state.running == 2 and router.addrs() == {"192.168.60.1/24"}
    router.run(router.rt.rollback(OPERATOR, to=1))
    assert router.addrs() == {"192.168.50.1/24"}
    text = (router.dir / "oxwrt.toml").read_text()
    assert "192.168.50.1" in text and text.startswith("# my router")  # comments kept
    mode = stat.S_IMODE((router.dir / "oxwrt.secrets.toml").stat().st_mode)
    assert mode == 0o600


def test_push_without_secrets_keeps_the_current_secrets(router: Router) -> None:
    router.write(public(), secrets("first passphrase"))
    router.rt.boot()
    router.run(router.rt.push(public(host="r2"), None, OPERATOR, comment="rename"))
    router.run(router.rt.reload(OPERATOR))
    assert router.kernel.hostname == "r2"
    assert "first passphrase" in (router.dir / "oxwrt.secrets.toml").read_text()


def test_invalid_push_changes_nothing(router: Router) -> None:
    router.write(public(), secrets())
    router.rt.boot()
    before = list(router.store.records())
    with pytest.raises(ApiError) as err:
        router.run(router.rt.push("hostname = 1\n", None, OPERATOR))
    assert err.value.code == "invalid" and err.value.details
    assert list(router.store.records()) == before


def test_a_revision_the_kernel_refuses_is_reverted_exactly(router: Router) -> None:
    router.write(public(), secrets())
    router.rt.boot()
    digest = router.nft.installed_digest("inet oxwrt")
    bad = public(host="r9").replace(
        "[control]", '[[firewall.raw_nft]]\nchain = "input"\nrule = "bogus words here"\n\n[control]'
    )
    router.run(router.rt.push(bad, None, OPERATOR))
    with pytest.raises(ApiError) as err:
        router.run(router.rt.reload(OPERATOR))
    s = router.rt.state
    assert s.running == 1 and s.revisions[2].status == "reverted"
    assert err.value.code == "apply-failed" and "reverting to revision 1" in err.value.message
    assert router.nft.installed_digest("inet oxwrt") == digest
    assert router.kernel.hostname == "r1"


def test_commit_confirmed_reverts_when_the_deadline_passes_even_across_a_restart(
    router: Router,
) -> None:
    router.write(public(), secrets())
    router.rt.boot()
    router.run(router.rt.push(public(lan="10.9.9.1"), None, OPERATOR))
    router.run(router.rt.reload(OPERATOR, confirm_within=120))
    assert router.addrs() == {"10.9.9.1/24"}
    router.clock.now += 300  # the daemon was down while the window closed
    rt = router.start()
    rt.boot()
    assert rt.state.running == 1 and router.addrs() == {"192.168.50.1/24"}
    assert "192.168.50.1" in (router.dir / "oxwrt.toml").read_text()


def test_dry_run_reports_the_plan_and_changes_nothing(router: Router) -> None:
    router.write(public(), secrets())
    router.rt.boot()
    router.run(router.rt.push(public(lan="10.1.1.1"), None, OPERATOR))
    writes = router.kernel.writes
    out = router.run(router.rt.dry_run())
    assert any("10.1.1.1" in line for line in out.lines)
    assert router.kernel.writes == writes and router.addrs() == {"192.168.50.1/24"}


def test_status_diff_blame_and_dump_config_never_show_secrets(router: Router) -> None:
    router.write(public(), secrets("top-secret-value"))
    router.rt.boot()
    router.run(router.rt.push(public(host="r2"), secrets("another-secret-1"), OPERATOR, "c"))
    status = router.run(router.rt.status())
    assert status.running_revision == 1 and status.candidate_revision == 2
    # the head is an anchor: `oxwrtd journal verify --expect SEQ:HASH` checks history against it
    seq, head = router.rt.events.store.head()
    assert (status.journal_seq, status.journal_head) == (seq, head.hex())
    diff = router.run(router.rt.diff(1, 2))
    assert '+hostname = "r2"' in diff and "secrets: changed" in diff
    assert router.run(router.rt.diff(1, 1)) == (
        "# revision 1 and revision 1: public file identical\n# secrets: unchanged\n"
    )
    blame = router.run(router.rt.blame("hostname"))
    assert blame.revision == 2 and blame.author == "alice"
    dump = router.run(router.rt.dump_config())
    assert "<redacted>" in dump and "another-secret-1" not in dump
    revs = router.run(router.rt.revisions())
    assert [r.id for r in revs] == [2, 1] and revs[1].running


def test_diag_reads_the_kernel_the_runtime_applied_to(router: Router) -> None:
    router.write(public(), secrets())
    router.rt.boot()

    def diag(op: str, *args: str) -> str:
        return router.run(router.rt.diag(op, list(args)))

    assert "br-lan" in diag("links") and "bridge" in diag("links")
    assert "192.168.50.1/24" in diag("addresses")
    summary = diag("nft-summary")
    assert "table inet oxwrt" in summary and "chain input" in summary
    assert diag("firewall") == router.rt.dataplane.firewall_text != ""
    assert diag("sysctl").startswith("net.ipv4.ip_forward = ")
    assert diag("modules")  # this machine's /proc/modules, or why it cannot be read
    assert "lo" in diag("qdisc") and diag("dmesg")
    with pytest.raises(ApiError, match="not a sysctl key") as err:
        diag("sysctl", "../../etc/shadow")
    assert err.value.code == "bad-request"
    with pytest.raises(ApiError, match="diag wol is not available") as err:
        diag("wol", "00:11:22:33:44:55")
    assert err.value.code == "unsupported"


def test_diag_reads_files_afresh_and_revision_texts_stay_cached(tmp_path: Path) -> None:
    """A /proc value changes between two diags; a journaled revision's text never does."""
    from oxwrtd import runtime

    knob = tmp_path / "ip_forward"
    knob.write_text("0\n")
    assert runtime._read_proc(str(knob)) == "0"
    knob.write_text("1\n")
    assert runtime._read_proc(str(knob)) == "1"
    assert runtime._parsed('hostname = "r1"\n') is runtime._parsed('hostname = "r1"\n')
