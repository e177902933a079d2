"""The runtime: the one owner of the loop request -> decide -> append -> fold -> act.

Every entry point (an RPC, SIGHUP after a local edit, the confirm timer, boot) becomes a
`decide` request; the events are journaled before anything acts on them; effects (apply a
revision, compute a plan) are carried out by the dataplane and their outcome is fed back as a
request, so the journal tells the whole story. Calls are serialised by one lock: two operators
never interleave a read-modify-write. Secrets reach the journal only sealed with the device key.
The config files on disk are rewritten to the running revision after every apply.
A second timer (`run_health`) probes each applied revision and checks the kernel for drift
(core/health.py decides when and what it means); probes run outside the lock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import difflib
import functools
import logging
import os
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

from oxwrtd.control.api import ApiError, Author, BlameLine, Outcome, RevisionInfo
from oxwrtd.core import decide as d
from oxwrtd.core import diag, health, net
from oxwrtd.core.net_ops import ApplyFailed as NetApplyFailed
from oxwrtd.core.render_hostapd import ap_interfaces
from oxwrtd.core.state import Revision, State
from oxwrtd.core.status_view import access_points, wan_view
from oxwrtd.core.unbuilt import unbuilt
from oxwrtd.eventlog import EventLog
from oxwrtd.shell.dataplane import ApplyError, Dataplane
from oxwrtd.shell.links import kernel_log, operstates
from oxwrtd.shell.nft import NftApplyError
from schema import secrets as sec
from schema import wire
from schema.config import Config
from schema.events import Event, SealedLeaf, Signed
from schema.load import PUBLIC_NAME, SECRETS_NAME, Loaded, load_text
from schema.seal import SealError, seal, unseal
from schema.tomledit import dumps, write_pair

if TYPE_CHECKING:
    from oxwrtd.services import Services
    from oxwrtd.shell.probes import Probes

log = logging.getLogger("oxwrtd")

SECRETS_LEAF: Final = SECRETS_NAME  # the whole secrets file is sealed as one leaf
LOCAL_AUTHOR: Final = "local"
REBOOT_REPLY_GRACE_S: Final = 0.5


class Runtime:
    # The health gate and drift schedule of the running revision: written on the kernel thread
    # after each apply, read by `run_health` on the loop (core/health.py owns the rules).
    _watch: health.Watch | None = None
    _watched: Config | None = None
    _drift_due: float | None = None
    _health_wake: asyncio.Event | None = None

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
        # the last revision loaded as a Config: revisions are immutable, and status, drift
        # checks and the health gate ask for the running one again and again (~3 ms a load)
        self._loaded_config: tuple[int, Config | None] | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        # Kernel work blocks (netlink, nft, fsync) and pyroute2 must not run on the event loop:
        # one worker thread does all of it, in order, while the loop keeps the control plane
        # answering (keep-alives during a long reload).
        self.kernel = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="oxwrtd-kernel")
        self._wake_loop: asyncio.AbstractEventLoop | None = None
        self.on_applied: list[Callable[[Config], None]] = []  # e.g. control plane ACL reload
        self.services: Services | None = None  # the supervisor's side; the daemon sets it
        # PID 1's shutdown request ("reboot" / "poweroff"); the daemon sets it when PID 1
        self.power: Callable[[Literal["reboot", "poweroff"]], None] | None = None

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
                if outcome.ok and self._watch_health(effect):
                    outcome = msgspec.structs.replace(outcome, gated=True)
                lines.extend(self.handle(outcome))
            else:
                lines.extend(self._plan(effect.revision))
        self._poke()  # the deadline may have moved
        return lines

    def observe(self, events: Sequence[Event], *, reapply: bool = False) -> list[str]:
        """Facts from the world (services, WAN leases), journaled as they are; kernel thread.
        `reapply` applies the running revision again (a new WAN lease moves the address, default
        route, masquerade and hairpin), its outcome journaled like any apply's."""
        return self.handle(d.Observed(events=list(events), reapply=reapply))

    def _poke(self) -> None:
        """Wake the timer; safe from the kernel thread."""
        if self._wake_loop is not None and not self._wake_loop.is_closed():
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
        for line in unbuilt(_parsed(rev.public_toml)):
            log.warning("revision %d: %s", rev.id, line)
        self._write_files(rev, loaded)
        self._loaded_config = (rev.id, config)
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

    def stopping(self, reason: str) -> list[str]:
        """Journal an orderly stop, so the next boot is not counted as a crash; kernel thread."""
        return self.handle(d.Stop(reason=reason))

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

    # ================================================================ health gate and drift

    def _watch_health(self, apply: d.Apply) -> bool:
        """`apply` succeeded: probe its revision from now on (a reload's or rollback's failure
        inside the window reverts it, core/health.py) and restart the drift schedule. True when
        a new gated window began (journaled, so a restart inside it resumes the gate)."""
        if apply.why == "fact" and self._watch and self._watch.revision == apply.revision:
            return False  # a lease re-applied the same revision: its window and gate carry on
        config = self._config_of(apply.revision)
        if config is None:  # it was just applied, so it loads; be safe rather than stop
            return False
        now = self.clock()
        self._watched = config
        self._watch = health.watch(config.health, apply.revision, apply.why, apply.fallback, now)
        self._drift_due = health.next_drift_check(config.health, now)
        loop, wake = self._wake_loop, self._health_wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)
        return self._watch is not None and self._watch.fallback is not None

    def health_deadline(self) -> float | None:
        """When the next health round or drift check is due."""
        watch_due = self._watch.due if self._watch else None
        due = [t for t in (watch_due, self._drift_due) if t is not None]
        return min(due) if due else None

    async def run_health(self, probes: Probes) -> None:
        """The health timer: re-armed at `health_deadline`, woken when an apply moves it."""
        self._wake_loop = asyncio.get_running_loop()
        wake = self._health_wake = asyncio.Event()
        while True:
            wake.clear()
            deadline = self.health_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            try:
                await asyncio.wait_for(wake.wait(), timeout)
            except TimeoutError:
                await self.health_step(probes)

    async def health_step(self, probes: Probes) -> None:
        """Run the drift check and the health round that are due. Probes block (ping, DNS):
        they run on worker threads outside the lock; only their report goes through decide."""
        now = self.clock()
        if self._drift_due is not None and now >= self._drift_due:
            for line in await self.offload(self.check_drift):
                log.warning("%s", line)
        watch, config = self._watch, self._watched
        if watch is None or config is None or watch.due is None or now < watch.due:
            return
        results = await probes.run(health.specs(config, self.state.leases))
        if self._watch is not watch:
            return  # an apply replaced the revision these probes measured
        self._watch, request = health.report(watch, results)
        failed = any(not r.ok for r in results)  # a healthy round is in the journal; quiet here
        for line in await self.offload(lambda: self.handle(request)):
            log.log(logging.WARNING if failed else logging.DEBUG, "%s", line)

    def _running_config(self) -> Config | None:
        running = self.state.running
        return None if running is None else self._config_of(running)

    def _config_of(self, revision: int) -> Config | None:
        """The Config of a journaled revision, loaded once while it stays the one asked for."""
        cached = self._loaded_config  # one read: the event loop and the kernel thread both ask
        if cached is None or cached[0] != revision:
            cached = (revision, self._load_revision(self.state.revisions[revision]).config)
            self._loaded_config = cached
        return cached[1]

    def kernel_drift(self) -> list[str]:
        """What the kernel holds that the running revision does not describe; kernel thread."""
        config = self._running_config()
        if config is None:
            return ["no revision is running"]
        try:
            return self.dataplane.drift(config, self._leases(config), self.clock())
        except (ApplyError, OSError) as exc:  # OSError: the kernel refused a dump
            return [f"cannot compare with the kernel: {exc}"]

    def check_drift(self) -> list[str]:
        """Compare the kernel with the running revision, repair it, journal what differed."""
        self._drift_due = None  # re-armed below, from the running revision's own interval
        config, running = self._running_config(), self.state.running
        if config is None or running is None:
            return []
        now = self.clock()
        self._drift_due = health.next_drift_check(config.health, now)
        leases = self._leases(config)
        try:
            found = self.dataplane.drift(config, leases, now)
        except (ApplyError, OSError) as exc:
            return [f"drift check of revision {running} failed: {exc}"]
        if not found:
            return []
        error = ""
        try:
            self.dataplane.repair(config, leases, now)
        except (ApplyError, NetApplyFailed, NftApplyError, OSError) as exc:
            error = str(exc)
        report = d.DriftReport(revision=running, findings=found, repaired=not error, error=error)
        return self.handle(report)

    def service_states(self) -> dict[str, str]:
        """Service name -> state as journaled, for the "services" probe."""
        return {name: row.state for name, row in self.state.services.items()}

    # ================================================================ RouterApi

    async def _run(self, request: d.Request) -> Outcome:
        lines = await self.offload(lambda: self.handle(request))
        return Outcome(lines=lines, running=self.state.running, candidate=self.state.candidate)

    async def status(self) -> wire.StatusReply:
        s = self.state
        services, service_problems = self.services.status() if self.services else ([], [])
        running = s.revisions.get(s.running) if s.running is not None else None
        probation = s.probation if s.probation and s.probation.revision == s.running else None
        return wire.StatusReply(
            supervisor_uptime_secs=int(self.clock() - self.started),
            hostname=_hostname_of(running.public_toml) if running else "",
            running_revision=s.running,
            candidate_revision=s.candidate,
            confirm_deadline=s.pending_confirm.deadline if s.pending_confirm else None,
            journal_seq=s.seq,
            journal_head=_head_anchor(self.events.store.head(), s.seq),
            probation_fallback=probation.fallback if probation else None,
            probation_restarts=probation.restarts if probation else 0,
            problems=list(self.problems)
            + service_problems
            + (unbuilt(_parsed(running.public_toml)) if running else []),
            services=services,
            firewall_rules=self.dataplane.firewall_rules,
            **self._network_status(),
        )

    def _network_status(self) -> dict[str, Any]:
        """The WAN and access-point parts of `status`, from the running revision's config
        and the journal's leases."""
        config = self._running_config()
        if config is None:
            return {}
        view = wan_view(config, self.state.leases, self.state.probes, self.clock())
        ifaces = [iface for _, iface in ap_interfaces(config)]
        return {
            "wan": view.summary,
            "active_wan": view.active,
            "wans": view.entries,
            "aps": access_points(config, operstates(ifaces)),
        }

    async def get(self, key: str) -> str:
        """A value of the head revision's public file, addressed as `set` addresses it (entries
        of arrays by index or identity: `wifi.homelab.channel`). Secrets are write-only."""
        from oxwrtd import admin

        head = d.head(self.state)
        if head is None:
            raise ApiError("not-found", "no config yet")
        doc = _parsed(self.state.revisions[head].public_toml)
        path = admin.resolve_key(doc, key)
        if sec.is_secret_path(doc, path):
            raise ApiError(
                "bad-request",
                f"{key} is a secret: write-only, never read back (set it with `oxctl set`)",
            )
        value: Any = doc
        for part in path:
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                raise ApiError("not-found", f"no key {key!r} in revision {head}") from None
        return msgspec.json.encode(value).decode()

    async def set(self, key: str, value: str, author: Author) -> Outcome:
        # A new candidate edited from the head revision's own texts (comments and secrets
        # kept), proposed like a push based on that head; `reload` applies it.
        from oxwrtd import admin

        def propose() -> list[str]:
            head = d.head(self.state)
            if head is None:
                raise ApiError("not-found", "no config yet: push one with config-push")
            rev = self.state.revisions[head]
            secrets = self._secrets_text(rev.sealed_secrets)
            public, new_secrets = admin.set_request(rev.public_toml, secrets, key, value, self.env)
            secret = new_secrets != secrets  # the value went to the secrets file
            request = d.Propose(
                public_toml=public,
                secrets_toml=new_secrets,
                sealed=self._seal(new_secrets),
                comment=f"set {key}" if secret else f"set {key} = {value}",
                base_revision=head,
                source="rpc",
                # an old client's request holds the secret value in clear: never journal it
                by=_signed(author, withhold=secret and "value" not in author.committed),
            )
            return self.handle(request)

        lines = await self.offload(propose)
        return Outcome(lines=lines, running=self.state.running, candidate=self.state.candidate)

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
            # an old client's request holds the secrets file in clear: never journal it
            by=_signed(
                author, withhold=secrets_toml is not None and "secrets" not in author.committed
            ),
        )
        return await self._run(request)

    async def reload(
        self, author: Author, *, confirm_within: float | None = None, comment: str = ""
    ) -> Outcome:
        target = d.head(self.state)
        return self._took_effect(target, await self._run(d.Reload(confirm_within=confirm_within)))

    def _took_effect(self, target: int | None, outcome: Outcome) -> Outcome:
        """A change that failed and was reverted is an error for the operator (exit non-zero),
        even though the router is healthy again; the lines say what happened."""
        if target is not None and self.state.running != target:
            raise ApiError("apply-failed", "; ".join(outcome.lines))
        return outcome

    async def dry_run(self) -> Outcome:
        return await self._run(d.Reload(dry_run=True))

    async def confirm(self, author: Author) -> Outcome:
        return await self._run(d.Confirm(by=_signed(author)))

    async def rollback(
        self, author: Author, *, to: int | None = None, at: float | None = None, comment: str = ""
    ) -> Outcome:
        if at is not None:
            to = self._running_at(at)
        target = to if to is not None else d.previous_good(self.state, self.state.running)
        outcome = await self._run(d.Rollback(to=to, comment=comment, by=_signed(author)))
        return self._took_effect(target, outcome)

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
        if not text:  # say so: an empty diff reads like a failure
            text = f"# revision {a.id} and revision {b.id}: public file identical\n"
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
        rev = self.state.revisions[head]  # immutable once journaled: safe to read elsewhere

        def render() -> str:
            redacted, count = sec.redact(self._load_revision(rev).raw)
            return f"# revision {head}, {count} secret leaves redacted\n" + dumps(redacted)

        # a load and a dump cost milliseconds, more with large ipsets: not on the event loop,
        # where every other RPC and the supervisor wait
        return await asyncio.to_thread(render)

    async def diag(self, op: str, args: Sequence[str]) -> str:
        """Read-only views of the kernel (core/diag.py), gathered on the kernel thread: the
        netlink socket is that thread's."""
        try:
            diag.check(op, args)
        except diag.DiagError as exc:
            raise ApiError(exc.code, str(exc)) from None
        return (await self.offload(lambda: [self._diag(op, args)]))[0]

    def _diag(self, op: str, args: Sequence[str]) -> str:
        if op in {"links", "addresses", "routes"}:
            inventory = self.dataplane.netlink.inventory()
            show = {"links": diag.links_text, "addresses": diag.addresses_text}
            return show.get(op, diag.routes_text)(inventory)
        if op == "firewall":
            return self.dataplane.firewall_text or "no ruleset installed since the daemon started\n"
        if op in {"nft", "nft-summary"}:
            try:
                listing = self.dataplane.nft.list_ruleset()
            except OSError as exc:
                return f"({exc})\n"
            return listing if op == "nft" else diag.nft_summary(listing)
        if op == "dhcp":
            config = self._running_config()
            wans = (
                [w.iface for w in config.wans_by_priority() if w.mode == "dhcp"] if config else []
            )
            return diag.dhcp_text(self.state.leases, wans, self.clock())
        if op == "qdisc":
            return diag.qdiscs_text(self.dataplane.netlink.qdiscs())
        if op == "dmesg":
            try:
                return diag.kmsg_text(kernel_log())
            except OSError as exc:
                return f"(the kernel log cannot be read: {exc.strerror or exc})\n"
        if op == "sysctl":
            keys = [diag.sysctl_path(args[0])] if args else list(diag.SYSCTL_DEFAULTS)
            return "".join(f"{key.replace('/', '.')} = {_read_proc(f'/proc/sys/{key}')}\n"
                           for key in keys)  # fmt: skip
        return _read_proc(diag.FILES[op], whole=True)

    async def restart(self, service: str, author: Author) -> Outcome:
        if self.services is None:
            raise ApiError("unsupported", "this runtime supervises no services")
        return self.services.restart(service)

    async def logs(self, service: str, follow: bool) -> AsyncIterator[str]:
        if self.services is None:
            raise ApiError("unsupported", "this runtime supervises no services")
        async for line in self.services.logs(service, follow):
            yield line

    async def backup(self) -> bytes:
        # The running revision (what the router does), its keys and the journal export.
        from oxwrtd import admin

        def pack() -> bytes:
            revision = self.state.running if self.state.running is not None else d.head(self.state)
            if revision is None:
                raise ApiError("not-found", "no config yet: nothing to back up")
            rev = self.state.revisions[revision]
            lines = admin.journal_export(self.events.store.records())
            return admin.make_backup(
                self.config_dir, rev.public_toml, self._secrets_text(rev.sealed_secrets), lines
            )

        # offload() carries lines; this carries bytes, under the same lock and thread
        loop = self._wake_loop = asyncio.get_running_loop()
        async with self._lock:
            return await loop.run_in_executor(self.kernel, pack)

    async def restore(self, tarball: bytes, author: Author) -> Outcome:
        # A new revision proposed and reloaded through the normal path; the keys are written
        # only once the proposal validated, and before the reload so the control plane's ACL
        # reload reads them. The backup's journal export is not replayed.
        from oxwrtd import admin
        from oxwrtd.control import restore as rs

        def restore() -> list[str]:
            admin.refuse_while_confirm_pending(self.state, "restore")
            try:
                contents = rs.validate(tarball)
            except rs.RestoreError as exc:
                raise ApiError(
                    "invalid", f"restore refused, nothing applied: {exc}", exc.details
                ) from None
            plan = admin.apply_restore(contents, self.config_dir)
            request = d.Propose(
                public_toml=plan.public_toml,
                secrets_toml=plan.secrets_toml,
                sealed=self._seal(plan.secrets_toml),
                comment="restore from backup",
                base_revision=d.head(self.state),
                source="rpc",
                # an old client's request holds the tarball, secrets and all, in clear
                by=_signed(author, withhold="data_b64" not in author.committed),
            )
            lines = self.handle(request)
            lines += admin.write_key_files(plan.key_files)
            lines += self.handle(d.Reload())
            return lines + plan.notes

        lines = await self.offload(restore)
        return Outcome(lines=lines, running=self.state.running, candidate=self.state.candidate)

    async def reset(self, author: Author) -> Outcome:
        # The factory default keeps the management path (admin.reset_texts), proposed and
        # reloaded as a new revision: `rollback --to` the previous one undoes it.
        from oxwrtd import admin

        def reset() -> list[str]:
            admin.refuse_while_confirm_pending(self.state, "reset")
            revision = self.state.running if self.state.running is not None else d.head(self.state)
            if revision is None:
                raise ApiError("not-found", "no config yet: nothing to reset")
            rev = self.state.revisions[revision]
            public, secrets = admin.reset_texts(
                rev.public_toml, self._secrets_text(rev.sealed_secrets)
            )
            request = d.Propose(
                public_toml=public,
                secrets_toml=secrets,
                sealed=self._seal(secrets),
                comment="factory reset",
                base_revision=d.head(self.state),
                source="rpc",
                by=_signed(author),
            )
            return self.handle(request) + self.handle(d.Reload())

        lines = await self.offload(reset)
        return Outcome(lines=lines, running=self.state.running, candidate=self.state.candidate)

    async def reboot(self, author: Author, mode: Literal["reboot", "poweroff"]) -> Outcome:
        power = self.power
        if power is None:
            raise ApiError("unsupported", f"{mode} is only available when oxwrtd runs as PID 1")
        log.warning("%s requested by %s", mode, author.name or "an operator")
        # a moment's delay, so this reply leaves before the control plane closes
        asyncio.get_running_loop().call_later(REBOOT_REPLY_GRACE_S, power, mode)
        return Outcome(
            lines=[f"{mode} in {REBOOT_REPLY_GRACE_S:g} s"],
            running=self.state.running,
            candidate=self.state.candidate,
        )


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


def _read_proc(path: str, *, whole: bool = False) -> str:
    """A /proc (or /etc) file for `diag`, or why it cannot be read."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        return f"({path}: {exc.strerror or exc})" + ("\n" if whole else "")
    return text if whole else text.strip()


@functools.lru_cache(maxsize=128)
def _parsed(public_toml: str) -> dict[str, Any]:
    """The parsed public text of a revision (immutable once journaled, so cached by text):
    status and get must not pay a full load and validation (~3 ms) per call."""
    try:
        return tomllib.loads(public_toml)
    except tomllib.TOMLDecodeError:
        return {}


def _hostname_of(public_toml: str) -> str:
    value = _parsed(public_toml).get("hostname")
    return value if isinstance(value, str) else ""


def _head_anchor(head: tuple[int, bytes], folded: int) -> str:
    """The head record's hash, when it is the record the state was folded through."""
    seq, digest = head
    return digest.hex() if seq and seq == folded else ""


def _signed(author: Author, *, withhold: bool = False) -> Signed | None:
    """The author as journaled; `withhold` drops the request bytes (they carried secrets in
    clear, as from clients older than the salted commitments of schema.wire)."""
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
