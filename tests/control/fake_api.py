"""A RouterApi that records every call and answers from plain fixtures (tests only).

`calls` lists (method, arguments) in order, so a test can assert what reached the runtime and,
as importantly, that nothing did. `fail[method] = ApiError(...)` makes that method refuse.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from oxwrtd.control.api import ApiError, Author, BlameLine, Outcome, RevisionInfo
from schema import wire

PUBLIC_TOML = """\
hostname = "lab-router"

[[networks]]
name = "wan"
type = "wan"
iface = "eth0"
mode = "dhcp"

[[networks]]
name = "lan"
type = "lan"
bridge = "br-lan"
address = "192.168.50.1"
prefix = 24

[control]
listen = ["127.0.0.1:51820"]
"""
T0 = 1_764_000_000.0


def tarball(members: dict[str, bytes]) -> bytes:
    """A gzip tar of regular files, as a backup writes it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


GOOD_BACKUP = tarball(
    {"oxwrt/oxwrt.toml": PUBLIC_TOML.encode(), "oxwrt/key.ed25519": bytes(range(32))}
)


class FakeApi:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail: dict[str, ApiError] = {}
        self.log_lines: dict[str, list[str]] = {"dns": ["dns up", "query a.example"]}
        self.followers_cancelled = 0
        self.live_lines = 10_000  # lines `logs -f` streams after the tail before it ends
        self.backup_bytes = GOOD_BACKUP
        self.revision_rows = [
            RevisionInfo(id=1, status="applied", time=T0, author="alice", comment="first"),
            RevisionInfo(id=2, status="failed", time=T0 + 60, author="bob", summary="bad dns"),
            RevisionInfo(id=3, status="applied", time=T0 + 120, author="alice", running=True),
            RevisionInfo(id=4, status="proposed", time=T0 + 180, author="alice", comment="wip"),
        ]
        self.status_reply = wire.StatusReply(
            supervisor_uptime_secs=3725,
            firewall_rules=42,
            active_wan="wan",
            wan=wire.WanSummary(address="203.0.113.7", prefix=24, gateway="203.0.113.1"),
            services=[
                wire.ServiceStatus(name="dns", state="running", pid=812, uptime_secs=3600),
                wire.ServiceStatus(name="ntp", state="crashed", restarts=3, last_log="no route"),
            ],
        )

    def _record(self, method: str, **args: Any) -> None:
        self.calls.append((method, args))
        if method in self.fail:
            raise self.fail[method]

    def _done(self, what: str, running: int | None = 3, candidate: int | None = None) -> Outcome:
        return Outcome(lines=[what], running=running, candidate=candidate)

    @property
    def methods(self) -> list[str]:
        return [m for m, _ in self.calls]

    async def status(self) -> wire.StatusReply:
        self._record("status")
        return self.status_reply

    async def get(self, key: str) -> str:
        self._record("get", key=key)
        if key != "hostname":
            raise ApiError("not-found", f"unknown key {key!r}; try `hostname`")
        return "lab-router"

    async def set(self, key: str, value: str, author: Author) -> Outcome:
        self._record("set", key=key, value=value, author=author)
        return self._done(f"{key} = {value} (candidate r5; run `reload` to apply)", candidate=5)

    async def push(
        self,
        public_toml: str,
        secrets_toml: str | None,
        author: Author,
        comment: str = "",
        base_revision: int | None = None,
    ) -> Outcome:
        self._record(
            "push",
            public_toml=public_toml,
            secrets_toml=secrets_toml,
            author=author,
            comment=comment,
            base_revision=base_revision,
        )
        return self._done("pushed as candidate r5", candidate=5)

    async def reload(
        self, author: Author, *, confirm_within: float | None = None, comment: str = ""
    ) -> Outcome:
        self._record("reload", author=author, confirm_within=confirm_within, comment=comment)
        return self._done("reloaded: r5 running", running=5)

    async def dry_run(self) -> Outcome:
        self._record("dry_run")
        return self._done("dry run: r5 would apply 3 changes", candidate=5)

    async def confirm(self, author: Author) -> Outcome:
        self._record("confirm", author=author)
        return self._done("r5 confirmed", running=5)

    async def rollback(
        self, author: Author, *, to: int | None = None, at: float | None = None, comment: str = ""
    ) -> Outcome:
        self._record("rollback", author=author, to=to, at=at, comment=comment)
        return self._done(f"rolled back to r{to or 1}", running=to or 1)

    async def revisions(self) -> list[RevisionInfo]:
        self._record("revisions")
        return list(self.revision_rows)

    async def show(self, revision: int) -> str:
        self._record("show", revision=revision)
        if revision > 4:
            raise ApiError("not-found", f"no revision r{revision}; see `oxctl HOST log`")
        return f"# r{revision}\n{PUBLIC_TOML}"

    async def diff(self, old: int, new: int | None = None) -> str:
        self._record("diff", old=old, new=new)
        return f"--- r{old}\n+++ r{new or 3}\n-hostname = old\n+hostname = new\n"

    async def blame(self, path: str) -> BlameLine:
        self._record("blame", path=path)
        return BlameLine(path=path, revision=3, author="alice", time=T0 + 120, comment="rename")

    async def dump_config(self) -> str:
        self._record("dump_config")
        return PUBLIC_TOML + 'passphrase = "<redacted>"\n'

    async def diag(self, op: str, args: Sequence[str]) -> str:
        self._record("diag", op=op, args=list(args))
        if op == "stall":
            raise ApiError("unsupported", "diag stall is not available on this router yet")
        return f"{op} {' '.join(args)}\n"

    async def restart(self, service: str, author: Author) -> Outcome:
        self._record("restart", service=service, author=author)
        return self._done(f"{service} restarted")

    async def logs(self, service: str, follow: bool) -> AsyncIterator[str]:
        self._record("logs", service=service, follow=follow)
        if service not in self.log_lines:
            raise ApiError("not-found", f"no service {service!r}")
        for line in self.log_lines[service]:
            yield line
        if follow:
            try:
                for i in range(self.live_lines):
                    await asyncio.sleep(0.02)
                    yield f"live {i}"
            finally:
                self.followers_cancelled += 1

    async def backup(self) -> bytes:
        self._record("backup")
        return self.backup_bytes

    async def restore(self, tarball: bytes, author: Author) -> Outcome:
        self._record("restore", tarball=tarball, author=author)
        return self._done("restored as r5 and applied", running=5)

    async def reset(self, author: Author) -> Outcome:
        self._record("reset", author=author)
        return self._done("reset to defaults as r5", running=5)

    async def reboot(self, author: Author, mode: Literal["reboot", "poweroff"]) -> Outcome:
        self._record("reboot", author=author, mode=mode)
        return self._done("rebooting", running=None)
