"""The runtime: the one owner of the loop request -> decide -> append -> fold -> act.

Every entry point (an RPC, SIGHUP after a local edit, the confirm timer, boot) becomes a
`decide` request; the events are journaled before anything acts on them; effects (apply a
revision, compute a plan) are carried out by the dataplane and their outcome is fed back as a
request, so the journal tells the whole story. Calls are serialised by one lock: two operators
never interleave a read-modify-write. Secrets reach the journal only sealed with the device key.
The config files on disk are rewritten to the running revision after every apply.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import difflib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from oxwrtd.control.api import ApiError, Author, BlameLine, Outcome, RevisionInfo
from oxwrtd.core import decide as d
from oxwrtd.core import net
from oxwrtd.core.state import Revision, State
from oxwrtd.eventlog import EventLog
from oxwrtd.shell.dataplane import ApplyError, Dataplane
from schema import secrets as sec
from schema import wire
from schema.config import Config
from schema.events import SealedLeaf, Signed
from schema.load import PUBLIC_NAME, SECRETS_NAME, Loaded, load_text
from schema.seal import SealError, seal, unseal
from schema.tomledit import dumps, write_pair

log = logging.getLogger("oxwrtd")

SECRETS_LEAF: Final = SECRETS_NAME  # the whole secrets file is sealed as one leaf
LOCAL_AUTHOR: Final = "local"


class Runtime:
    def __init__(
        self,
        *,
        events: EventLog,
        dataplane: Dataplane,
        config_dir: Path,
        device_key: bytes,
        software: str,
        clock: Callable[[], float] = time.time,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.events = events
        self.dataplane = dataplane
        self.config_dir = Path(config_dir)
        self.device_key = device_key
        self.software = software
        self.clock = clock
        self.env = dict(env or {})
        self.started = clock()
        self.problems: list[str] = []  # shown in status until the next successful load
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        # Kernel work blocks (netlink, nft, fsync) and pyroute2 must not run on the event loop:
        # one worker thread does all of it, in order, while the loop keeps the control plane
        # answering (keep-alives during a long reload).
        self.kernel = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="oxwrtd-kernel")
        self._wake_loop: asyncio.AbstractEventLoop | None = None
        self.on_applied: list[Callable[[Config], None]] = []  # e.g. control plane ACL reload

    @property
    def state(self) -> State:
        return self.events.state

    # ================================================================ the loop (sync)

    def handle(self, request: d.Request) -> list[str]:
        """Decide, journal, act; the operator-facing lines. Raises ApiError on rejection."""
        now = self.clock()
        decision = d.decide(self.state, request, now)
        if decision.rejected is not None:
            r = decision.rejected
            raise ApiError(r.code, r.message, r.details)
        self.events.append(decision.events, now)
        lines = [decision.reply] if decision.reply else []
        for effect in decision.effects:
            if isinstance(effect, d.Apply):
                outcome = self._carry_out(effect)
                lines.extend(self.handle(outcome))
            else:
                lines.extend(self._plan(effect.revision))
        self._poke()  # the deadline may have moved
        return lines

    def _poke(self) -> None:
        """Wake the timer; safe from the kernel thread."""
        if self._wake_loop is not None:
            self._wake_loop.call_soon_threadsafe(self._wake.set)

    async def offload(self, fn: Callable[[], list[str]]) -> list[str]:
        """Run `fn` on the kernel thread, serialised with every other call."""
        loop = self._wake_loop = asyncio.get_running_loop()
        async with self._lock:
            return await loop.run_in_executor(self.kernel, fn)

    def _carry_out(self, apply: d.Apply) -> d.ApplyOutcome:
        rev = self.state.revisions[apply.revision]
        try:
            loaded = self._load_revision(rev)
            config = loaded.raise_for_issues()
            changes = self.dataplane.apply(config, self._leases(config), self.clock())
        except ApplyError as exc:
            log.warning("revision %d: %s", rev.id, exc)
            return d.ApplyOutcome(apply=apply, ok=False, reason=exc.reason, step=exc.step)
        except (ApiError, SealError, ValueError) as exc:
            return d.ApplyOutcome(apply=apply, ok=False, reason=str(exc), step="load")
        log.info("revision %d applied (%s): %s", rev.id, apply.why, "; ".join(changes) or "no-op")
        self._write_files(rev, loaded)
        for hook in self.on_applied:
            hook(config)
        return d.ApplyOutcome(apply=apply, ok=True)

    def _plan(self, revision: int) -> list[str]:
        rev = self.state.revisions[revision]
        config = self._load_revision(rev).raise_for_issues()
        try:
            lines = self.dataplane.plan(config, self._leases(config), self.clock())
        except ApplyError as exc:
            raise ApiError("apply-failed", str(exc)) from exc
        return [f"dry run of revision {revision}:", *lines]

    # ================================================================ revisions and files

    def _secrets_text(self, sealed: Mapping[str, SealedLeaf]) -> str | None:
        leaf = sealed.get(SECRETS_LEAF)
        return unseal(self.device_key, leaf) if leaf is not None else None

    def _load_revision(self, rev: Revision) -> Loaded:
        return load_text(rev.public_toml, self._secrets_text(rev.sealed_secrets), self.env)

    def _seal(self, secrets_text: str | None) -> dict[str, SealedLeaf]:
        return {SECRETS_LEAF: seal(self.device_key, secrets_text)} if secrets_text else {}

    def _head_secrets(self) -> str | None:
        head = d.head(self.state)
        return self._secrets_text(self.state.revisions[head].sealed_secrets) if head else None

    def _leases(self, config: Config) -> dict[str, net.Lease]:
        """WAN name -> lease, from the journal's leases (keyed by interface)."""
        out: dict[str, net.Lease] = {}
        for wan in config.wans_by_priority():
            lease = self.state.leases.get(wan.iface)
            if lease is None:
                continue
            address, _, prefix = lease.address.partition("/")
            out[wan.name] = net.Lease(
                address=address, prefix=int(prefix or 32), gateway=lease.gateway
            )
        return out

    def _paths(self) -> tuple[Path, Path]:
        return self.config_dir / PUBLIC_NAME, self.config_dir / SECRETS_NAME

    def _write_files(self, rev: Revision, loaded: Loaded) -> None:
        """Rewrite the pair on disk to the running revision (atomic; secrets 0600). An edit on
        disk that the journal does not know is kept beside it, never destroyed."""
        public, secrets = self._paths()
        on_disk = _read(public), _read(secrets)
        wanted = rev.public_toml, loaded.secrets_text
        if on_disk == wanted:
            return
        if on_disk[0] is not None and not self._known_text(on_disk[0], on_disk[1]):
            kept = public.with_name(f"{PUBLIC_NAME}.local-{self.state.seq}")
            public.replace(kept)
            log.warning("kept the unapplied edit of %s as %s", public, kept.name)
            self.problems.append(f"an edit that did not validate was kept as {kept}")
        write_pair(public, rev.public_toml, secrets, loaded.secrets_text)

    def read_disk(self) -> tuple[str | None, str | None]:
        public, secrets = self._paths()
        return _read(public), _read(secrets)

    def _known_text(self, public: str, secrets: str | None) -> bool:
        """Whether the pair on disk is one the journal already has (not a local edit)."""
        for rev in self.state.revisions.values():
            if rev.public_toml == public and self._secrets_text(rev.sealed_secrets) == secrets:
                return True
        return False

    # ================================================================ boot, SIGHUP, timer

    def boot(self) -> list[str]:
        """Booted; revert an expired confirm; apply the running revision; adopt local edits.

        The files are read before anything is applied, because applying rewrites them."""
        on_disk = self.read_disk()
        lines = self.handle(d.Boot(software=self.software))
        lines.extend(self.adopt_local_edit(source="boot", texts=on_disk))
        return lines

    def adopt_local_edit(
        self,
        source: Literal["boot", "sighup"] = "sighup",
        texts: tuple[str | None, str | None] | None = None,
    ) -> list[str]:
        """The files in the config dir, when they differ from every known revision, become a
        new revision (author `local`) and are applied. Broken files never replace what runs."""
        public, secrets = texts if texts is not None else self.read_disk()
        if public is None:
            if self.state.running is None:
                self.problems = [f"{self.config_dir / PUBLIC_NAME}: missing; nothing to run"]
            return []
        if self._known_text(public, secrets):
            return []
        request = d.Propose(
            public_toml=public,
            secrets_toml=secrets,
            sealed=self._seal(secrets),
            comment=f"local edit ({source})",
            source=source,
            by=None,
        )
        try:
            lines = self.handle(request)
            lines += self.handle(d.Reload())
        except ApiError as exc:
            self.problems = [exc.message, *exc.details]
            log.error("config files in %s rejected: %s", self.config_dir, exc.message)
            for detail in exc.details:
                log.error("  %s", detail)
            return [exc.message, *exc.details]
        self.problems = []
        return lines

    async def local_edit(self) -> list[str]:
        """SIGHUP: adopt the files on disk, serialised with RPCs."""
        return await self.offload(lambda: self.adopt_local_edit("sighup"))

    def tick(self) -> list[str]:
        return self.handle(d.Tick())

    def next_deadline(self) -> float | None:
        return d.next_deadline(self.state)

    async def run_timer(self) -> None:
        """Re-arm one timer at the next deadline (confirm windows); wake early when it moves."""
        self._wake_loop = asyncio.get_running_loop()
        while True:
            deadline = self.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                for line in await self.offload(self.tick):
                    log.warning("%s", line)

    # ================================================================ RouterApi

    async def _run(self, request: d.Request) -> Outcome:
        lines = await self.offload(lambda: self.handle(request))
        return Outcome(lines=lines, running=self.state.running, candidate=self.state.candidate)

    async def status(self) -> wire.StatusReply:
        s = self.state
        running = s.revisions.get(s.running) if s.running is not None else None
        return wire.StatusReply(
            supervisor_uptime_secs=int(self.clock() - self.started),
            hostname=_hostname_of(running.public_toml) if running else "",
            running_revision=s.running,
            candidate_revision=s.candidate,
            confirm_deadline=s.pending_confirm.deadline if s.pending_confirm else None,
            journal_seq=s.seq,
            problems=list(self.problems),
        )

    async def get(self, key: str) -> str:
        head = d.head(self.state)
        if head is None:
            raise ApiError("not-found", "no config yet")
        doc = load_text(self.state.revisions[head].public_toml).raw
        value: Any = doc
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                raise ApiError("not-found", f"no key {key!r} in revision {head}")
            value = value[part]
        return msgspec.json.encode(value).decode()

    async def set(self, key: str, value: str, author: Author) -> Outcome:
        raise ApiError(
            "unsupported",
            "set is not wired to the runtime yet: edit the file and use config-push",
        )

    async def push(
        self,
        public_toml: str,
        secrets_toml: str | None,
        author: Author,
        comment: str = "",
        base_revision: int | None = None,
    ) -> Outcome:
        # A push without a secrets file keeps the current secrets (the reference wiped them).
        secrets = secrets_toml if secrets_toml is not None else self._head_secrets()
        request = d.Propose(
            public_toml=public_toml,
            secrets_toml=secrets,
            sealed=self._seal(secrets),
            comment=comment,
            base_revision=base_revision,
            source="rpc",
            # the signed request holds the secrets file in clear: never journal it
            by=_signed(author, withhold=secrets_toml is not None),
        )
        return await self._run(request)

    async def reload(
        self, author: Author, *, confirm_within: float | None = None, comment: str = ""
    ) -> Outcome:
        return await self._run(d.Reload(confirm_within=confirm_within))

    async def dry_run(self) -> Outcome:
        return await self._run(d.Reload(dry_run=True))

    async def confirm(self, author: Author) -> Outcome:
        return await self._run(d.Confirm(by=_signed(author)))

    async def rollback(
        self, author: Author, *, to: int | None = None, at: float | None = None, comment: str = ""
    ) -> Outcome:
        if at is not None:
            to = self._running_at(at)
        return await self._run(d.Rollback(to=to, comment=comment, by=_signed(author)))

    def _running_at(self, at: float) -> int:
        """The revision that was running at time `at`: the last one applied at or before it."""
        applied = [
            (r.applied_at, r.id)
            for r in self.state.revisions.values()
            if r.applied_at is not None and r.applied_at <= at
        ]
        if not applied:
            raise ApiError("not-found", "no revision was running at that time")
        return max(applied)[1]

    async def revisions(self) -> list[RevisionInfo]:
        s = self.state
        out = []
        summaries = {a.revision: a.summary for a in s.audit if a.action == "propose"}
        for rev in sorted(s.revisions.values(), key=lambda r: r.id, reverse=True):
            out.append(
                RevisionInfo(
                    id=rev.id,
                    status=rev.status,
                    time=rev.applied_at or rev.proposed_at,
                    author=rev.author or (LOCAL_AUTHOR if rev.source != "rpc" else None),
                    fingerprint=rev.fingerprint,
                    comment=rev.comment,
                    source=rev.source,
                    hostname=_hostname_of(rev.public_toml),
                    summary=summaries.get(rev.id, ""),
                    running=rev.id == s.running,
                )
            )
        return out

    def _revision(self, revision: int) -> Revision:
        rev = self.state.revisions.get(revision)
        if rev is None:
            known = ", ".join(str(i) for i in sorted(self.state.revisions)) or "none"
            raise ApiError("not-found", f"no revision {revision} (known: {known})")
        return rev

    async def show(self, revision: int) -> str:
        return self._revision(revision).public_toml

    async def diff(self, old: int, new: int | None = None) -> str:
        a = self._revision(old)
        b = self._revision(new if new is not None else (self.state.running or old))
        text = "".join(
            difflib.unified_diff(
                a.public_toml.splitlines(keepends=True),
                b.public_toml.splitlines(keepends=True),
                f"revision {a.id}",
                f"revision {b.id}",
            )
        )
        da = a.sealed_secrets.get(SECRETS_LEAF)
        db = b.sealed_secrets.get(SECRETS_LEAF)
        same = (da.digest if da else None) == (db.digest if db else None)
        return text + f"# secrets: {'unchanged' if same else 'changed'}\n"

    async def blame(self, path: str) -> BlameLine:
        """Which revision last changed the value at `path` (dotted, e.g. firewall.zones)."""
        history = sorted(self.state.revisions.values(), key=lambda r: r.id)
        last: Revision | None = None
        previous: object = _MISSING
        for rev in history:
            value = _lookup(load_text(rev.public_toml).raw, path)
            if value != previous:
                last, previous = rev, value
        if last is None or previous is _MISSING:
            raise ApiError("not-found", f"no revision sets {path!r}")
        return BlameLine(
            path=path,
            revision=last.id,
            author=last.author or LOCAL_AUTHOR,
            time=last.proposed_at,
            comment=last.comment,
        )

    async def dump_config(self) -> str:
        head = d.head(self.state)
        if head is None:
            raise ApiError("not-found", "no config yet")
        loaded = self._load_revision(self.state.revisions[head])
        redacted, count = sec.redact(loaded.raw)
        return f"# revision {head}, {count} secret leaves redacted\n" + dumps(redacted)

    async def restart(self, service: str, author: Author) -> Outcome:
        raise ApiError("unsupported", "service supervision is not wired into the daemon yet")

    async def logs(self, service: str, follow: bool) -> AsyncIterator[str]:
        raise ApiError("unsupported", "service supervision is not wired into the daemon yet")
        yield ""  # pragma: no cover - makes this an async generator

    async def backup(self) -> bytes:
        raise ApiError("unsupported", "backup is not built yet; copy the state dir instead")

    async def restore(self, tarball: bytes, author: Author) -> Outcome:
        raise ApiError("unsupported", "restore is not built yet")

    async def reset(self, author: Author) -> Outcome:
        raise ApiError("unsupported", "reset is not built yet")

    async def reboot(self, author: Author, mode: Literal["reboot", "poweroff"]) -> Outcome:
        raise ApiError("unsupported", "reboot is only available when oxwrtd runs as PID 1")


_MISSING: Final = object()


def _lookup(doc: Any, path: str) -> object:
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _hostname_of(public_toml: str) -> str:
    value = load_text(public_toml).raw.get("hostname")
    return value if isinstance(value, str) else ""


def _signed(author: Author, *, withhold: bool = False) -> Signed | None:
    """The author as journaled; `withhold` drops the request bytes (they carried secrets)."""
    if not author.public_key:
        return None
    return Signed(
        name=author.name,
        public_key=author.public_key,
        request=b"" if withhold else author.request,
        signature=author.signature,
    )


def environment_overlay() -> dict[str, str]:
    """The OXWRT_SECRET__ variables of this process, for the loader."""
    return {k: v for k, v in os.environ.items() if k.startswith("OXWRT_SECRET__")}


__all__ = ["LOCAL_AUTHOR", "Runtime", "environment_overlay"]
