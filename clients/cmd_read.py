"""Remote read commands: status, get, log, rollback-list, show, diff, blame, dump-config.

None of them changes the router, so `watch` may repeat any of them. Each renders a table or
text for people and, with `--json`, one JSON document with the same facts.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from clients.remote import Context, Refused, Subcommands, duration, json_flag, local_time, table

if TYPE_CHECKING:
    from schema.wire import RevisionRow, StatusReply


def _command(commands: Subcommands, name: str, help_: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_, description=help_)
    json_flag(parser)
    return parser


# ---------------------------------------------------------------- status


def add_status(commands: Subcommands) -> None:
    _command(
        commands, "status", "services, WANs, VPNs, access points and WireGuard peers"
    ).set_defaults(remote=run_status)


async def run_status(ctx: Context) -> int:
    from schema import wire

    reply = await ctx.call(wire.Status())
    if not isinstance(reply, wire.StatusReply):
        raise Refused(f"unexpected {type(reply).__name__} reply to status", "protocol")
    if ctx.json:
        import msgspec

        doc = msgspec.to_builtins(reply)
        doc.pop("kind", None)
        ctx.emit(doc)
    else:
        ctx.print(status_text(reply))
    return 0


def status_text(s: StatusReply) -> str:
    rows: list[tuple[object, ...]]
    out = []
    if s.hostname:
        out.append(f"hostname:          {s.hostname}")
    if s.running_revision is not None or s.candidate_revision is not None:
        rev = f"r{s.running_revision}" if s.running_revision is not None else "none"
        if s.candidate_revision is not None:
            rev += f" (candidate r{s.candidate_revision}: reload to apply)"
        out.append(f"running revision:  {rev}")
    if s.probation_fallback is not None:
        crashes = f", {s.probation_restarts} crash(es) so far" if s.probation_restarts else ""
        out.append(
            f"health window:     open; a failed probe or a crash reverts to "
            f"r{s.probation_fallback}{crashes}"
        )
    if s.confirm_deadline is not None:
        left = max(0, int(s.confirm_deadline - time.time()))
        out.append(f"confirm within:    {duration(left)} or it reverts by itself")
    out.append(f"supervisor uptime: {duration(s.supervisor_uptime_secs)}")
    if s.journal_head:  # keep it: `oxwrtd journal verify --expect` proves history was not rewritten
        out.append(f"journal head:      {s.journal_seq}:{s.journal_head}")
    out.append(f"firewall rules:    {s.firewall_rules}")
    if s.wan is not None:
        via = f" via {s.wan.gateway}" if s.wan.gateway else ""
        lease = f" (lease {s.wan.lease_seconds}s)" if s.wan.lease_seconds else ""
        active = f" [active={s.active_wan}]" if s.active_wan else ""
        out.append(f"wan: {s.wan.address}/{s.wan.prefix}{via}{lease}{active}")
    else:
        out.append("wan: (no lease)")
    if len(s.wans) > 1:
        rows = [
            (w.name, w.iface, w.priority, _health(w.active, w.healthy), w.address, w.gateway)
            for w in s.wans
        ]
        out.append(
            "\nwans:\n"
            + _indent(table(("NAME", "IFACE", "PRIO", "STATE", "ADDRESS", "GATEWAY"), rows))
        )
    if s.vpns:
        rows = [
            (v.name, v.iface, v.priority, _health(v.active, v.healthy), v.endpoint) for v in s.vpns
        ]
        head = f"\nvpn: [active={s.active_vpn or 'none (killswitch)'}]\n"
        out.append(head + _indent(table(("NAME", "IFACE", "PRIO", "STATE", "ENDPOINT"), rows)))
    if s.aps:
        rows = [(a.ssid, a.operstate, a.iface, a.radio_phy, a.band, a.channel) for a in s.aps]
        out.append(
            "\naccess points:\n"
            + _indent(table(("SSID", "STATE", "IFACE", "RADIO", "BAND", "CHANNEL"), rows))
        )
    for wg in s.wg:
        rows = [
            (
                p.name,
                "never"
                if p.last_handshake_secs_ago is None
                else duration(p.last_handshake_secs_ago),
                _bytes(p.rx_bytes),
                _bytes(p.tx_bytes),
                p.endpoint,
            )
            for p in wg.peers
        ]
        head = f"\nwireguard {wg.iface} :{wg.listen_port} ({len(wg.peers)} peers)\n"
        out.append(head + _indent(table(("PEER", "HANDSHAKE", "RX", "TX", "ENDPOINT"), rows)))
    rows = [(v.name, v.state, v.pid, v.restarts, duration(v.uptime_secs)) for v in s.services]
    lines = table(("NAME", "STATE", "PID", "RESTARTS", "UPTIME"), rows).splitlines()
    services = [lines[0]]
    for line, svc in zip(lines[1:], s.services, strict=True):
        services.append(line)
        if svc.last_log:
            services.append(f"  ↳ {svc.last_log}")
    out.append("\nservices:\n" + _indent("\n".join(services) + "\n"))
    if s.problems:
        out.append("problems:\n" + _indent("\n".join(s.problems) + "\n"))
    return "\n".join(out)


def _health(active: bool, healthy: bool) -> str:
    return "ACTIVE" if active else ("ready" if healthy else "down")


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f}TiB"


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines())


# ---------------------------------------------------------------- get


def add_get(commands: Subcommands) -> None:
    get = _command(commands, "get", "print one config value (the candidate, if one is pending)")
    get.add_argument("key", metavar="KEY", help="dotted key such as hostname or lan.address")
    get.set_defaults(remote=run_get)


async def run_get(ctx: Context) -> int:
    from schema import wire

    reply = await ctx.value(wire.Get(key=ctx.args.key))
    if ctx.json:
        ctx.emit({"key": ctx.args.key, "value": reply.value})
    else:
        ctx.print(reply.value)
    return 0


# ---------------------------------------------------------------- diag


def add_diag(commands: Subcommands) -> None:
    diag = _command(
        commands,
        "diag",
        "what the router's kernel holds: links, addresses, routes, firewall, nft, nft-summary, "
        "dhcp, sysctl [KEY], qdisc, dmesg, conntrack, resolv, modules",
    )
    diag.add_argument("op", metavar="OP", help="e.g. links, routes, nft-summary, sysctl")
    diag.add_argument(
        "args", metavar="ARG", nargs="*", help="sysctl: a key such as net.ipv4.ip_forward"
    )
    diag.set_defaults(remote=run_diag)


async def run_diag(ctx: Context) -> int:
    from schema import wire

    reply = await ctx.value(wire.Diag(name=ctx.args.op, args=list(ctx.args.args)))
    if ctx.json:
        ctx.emit({"op": ctx.args.op, "args": ctx.args.args, "value": reply.value})
    else:
        ctx.print(reply.value)
    return 0


# ---------------------------------------------------------------- revisions


def add_log(commands: Subcommands) -> None:
    log = _command(commands, "log", "the history of config revisions: who, when, why")
    log.add_argument(
        "--limit",
        metavar="N",
        type=_count,
        help="only the newest N revisions (the router sends at most its newest 1000)",
    )
    log.set_defaults(remote=run_log)


def add_rollback_list(commands: Subcommands) -> None:
    _command(
        commands, "rollback-list", "revisions that ran and can be rolled back to"
    ).set_defaults(remote=run_rollback_list)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative whole number")
    return int(text)


async def run_log(ctx: Context) -> int:
    from schema import wire

    return _revisions(ctx, await ctx.value(wire.Log(limit=ctx.args.limit)))


async def run_rollback_list(ctx: Context) -> int:
    from schema import wire

    return _revisions(ctx, await ctx.value(wire.RollbackList()))


def _revisions(ctx: Context, reply: Any) -> int:
    rows: list[RevisionRow] = reply.revisions or []
    if ctx.json:
        import msgspec

        ctx.emit({"revisions": msgspec.to_builtins(rows)})
        return 0
    if not rows:
        ctx.print(reply.value or "no revisions")
        return 0
    ctx.print(
        table(
            ("", "REV", "STATUS", "TIME", "AUTHOR", "COMMENT"),
            [
                (
                    "*" if r.running else "",
                    f"r{r.id}",
                    r.status,
                    local_time(r.time),
                    r.author or "local",
                    r.comment or r.summary,
                )
                for r in rows
            ],
        )
    )
    return 0


def add_show(commands: Subcommands) -> None:
    show = _command(commands, "show", "the config of one revision, secrets redacted")
    show.add_argument("rev", metavar="REV", type=_revision, help="revision id (3 or r3)")
    show.set_defaults(remote=run_show)


def add_diff(commands: Subcommands) -> None:
    diff = _command(commands, "diff", "what changed between two revisions")
    diff.add_argument("rev1", metavar="REV1", type=_revision)
    diff.add_argument(
        "rev2", metavar="REV2", type=_revision, nargs="?", help="default: the running revision"
    )
    diff.set_defaults(remote=run_diff)


def _revision(text: str) -> int:
    digits = text[1:] if text[:1] in "rR" else text
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a revision id such as 3 or r3")
    return int(digits)


async def run_show(ctx: Context) -> int:
    from schema import wire

    reply = await ctx.value(wire.Show(rev=ctx.args.rev))
    if ctx.json:
        ctx.emit({"revision": ctx.args.rev, "config": reply.value})
    else:
        ctx.print(reply.value)
    return 0


async def run_diff(ctx: Context) -> int:
    from schema import wire

    reply = await ctx.value(wire.Diff(rev1=ctx.args.rev1, rev2=ctx.args.rev2))
    if ctx.json:
        ctx.emit({"from": ctx.args.rev1, "to": ctx.args.rev2, "diff": reply.value})
    else:
        ctx.print(reply.value or "no changes")
    return 0


def add_blame(commands: Subcommands) -> None:
    blame = _command(commands, "blame", "which revision last changed a config path, and who")
    blame.add_argument("path", metavar="PATH", help="a config path such as firewall.rules")
    blame.set_defaults(remote=run_blame)


async def run_blame(ctx: Context) -> int:
    from schema import wire

    reply = await ctx.value(wire.Blame(path=ctx.args.path))
    row = reply.blame
    if ctx.json:
        import msgspec

        ctx.emit(msgspec.to_builtins(row) if row is not None else {"text": reply.value})
    elif row is not None:
        why = f"  {row.comment}" if row.comment else ""
        ctx.print(
            f"{row.path}: r{row.revision} by {row.author or 'local edit'} "
            f"at {local_time(row.time)}{why}"
        )
    else:
        ctx.print(reply.value)
    return 0


def add_dump_config(commands: Subcommands) -> None:
    _command(
        commands, "dump-config", "the router's merged config, every secret <redacted>"
    ).set_defaults(remote=run_dump_config)


async def run_dump_config(ctx: Context) -> int:
    from schema import wire

    reply = await ctx.value(wire.ConfigDump())
    if ctx.json:
        ctx.emit({"config": reply.value})
    else:
        ctx.print(reply.value)
    return 0


COMMANDS = (
    add_status,
    add_get,
    add_log,
    add_rollback_list,
    add_show,
    add_diff,
    add_blame,
    add_dump_config,
    add_diag,
)
# Commands `watch` may repeat: reads that end by themselves.
WATCHABLE = frozenset(
    {"status", "get", "log", "rollback-list", "show", "diff", "blame", "dump-config", "diag"}
)

__all__ = ["COMMANDS", "WATCHABLE", "status_text"]
