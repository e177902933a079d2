"""The operator workflows beside push: `set KEY VALUE`, `backup`, `restore` and `reset`.

Pure-ish functions the runtime delegates to; each turns texts it is given into the texts of a
new revision (which the runtime proposes and journals like any push) or into backup bytes.
Invariants:
- `set` edits the head revision's texts with schema.tomledit, so the operator's comments and
  every secret survive; a key that names nothing is a clear error before anything is proposed;
- a backup is exactly what oxwrtd.control.restore.validate accepts: deterministic member order
  and metadata, never a VPN client key, never larger than one control-plane frame;
- a restore is a new revision; the journal export inside a backup is kept for audit and is never
  replayed over the router's own journal (that would rewrite history that is already signed);
- a reset never locks the operator out: `[control]` is kept whole, with the networks it listens
  on, and a firewall zone that accepts input from them.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Final

import msgspec

from oxwrtd.control import restore as rs
from oxwrtd.control.api import ApiError
from oxwrtd.control.handler import MAX_BACKUP_BYTES
from oxwrtd.core.state import State
from oxwrtd.journal_tool import export_lines
from oxwrtd.shell.files import write_atomic
from schema import secrets as sec
from schema.config import Control
from schema.errors import ConfigError, format_path
from schema.errors import Path as ConfigPath
from schema.load import PUBLIC_NAME, SECRETS_NAME, load_text
from schema.tomledit import dumps, set_value_pair

SERVER_KEY_MODE: Final = 0o600
AUTHORIZED_KEYS_MODE: Final = 0o644
WIREGUARD_KEY_MODE: Final = 0o600
BACKUP_MTIME: Final = 0  # fixed, so two backups of the same router are byte-identical
DEFAULT_HOSTNAME: Final = "oxwrt"
DEFAULT_AUTHORIZED_KEYS: Final = next(
    f.default for f in msgspec.structs.fields(Control) if f.name == "authorized_keys"
)
RESET_HEADER: Final = (
    "# oxwrt factory default, written by `oxctl reset`.\n"
    "# Only the management path was kept: [control] as it was, the networks it listens on and\n"
    "# a zone accepting input from them. Push your full config (`oxctl HOST config-push FILE`)\n"
    "# or `oxctl HOST rollback --confirm --to REV` to get the rest back.\n"
)


# ================================================================ set


_SEGMENT = re.compile(r'(?:"(?P<quoted>[^"]*)"|(?P<bare>[A-Za-z0-9_-]+))(?P<index>(?:\[\d+\])*)')


def parse_key(key: str) -> list[str | int]:
    """`a.b[2]."x.y".c` -> ["a", "b", 2, "x.y", "c"]: dotted keys, quoted where they hold a dot,
    and `[N]` indexes into arrays."""
    out: list[str | int] = []
    pos = 0
    while True:
        match = _SEGMENT.match(key, pos)
        if match is None:
            raise ApiError(
                "bad-request",
                f"{key!r}: cannot read the key at column {pos + 1}; write a dotted path such as "
                '`hostname`, `networks.lan.address`, `firewall.rules[2].action` or `wifi."my.ssid"'
                ".channel`",
            )
        quoted = match.group("quoted")
        out.append(quoted if quoted is not None else match.group("bare"))
        out.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group("index")))
        pos = match.end()
        if pos == len(key):
            return out
        if key[pos] != ".":
            raise ApiError("bad-request", f"{key!r}: expected `.` or `[` at column {pos + 1}")
        pos += 1


def resolve_key(doc: Mapping[str, Any], key: str) -> ConfigPath:
    """The path into `doc` (the public file) that `key` names. An entry of an array of tables is
    named by index or by its identity (`name`; `ssid` for wifi, `phy` for radios). A missing last
    key is allowed (it is added, and validation judges it); a missing entry is an error."""
    parts = parse_key(key)
    path: list[str | int] = []
    section: list[str] = []
    node: Any = doc
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            index = part if isinstance(part, int) else _entry_index(node, section, part, key)
            if not 0 <= index < len(node):
                raise ApiError(
                    "not-found",
                    f"{key}: {'.'.join(section)} has {len(node)} entries, no index {index}",
                )
            path.append(index)
            node = node[index]
            continue
        if isinstance(part, int):
            raise ApiError("not-found", f"{key}: {format_path(tuple(path))} is not an array")
        if not isinstance(node, Mapping):
            raise ApiError(
                "not-found", f"{key}: {format_path(tuple(path))} is a value, it has no keys"
            )
        path.append(part)
        section.append(part)
        if part not in node:
            if not last and isinstance(parts[depth + 1], int):
                raise ApiError("not-found", f"{key}: there is no {'.'.join(section)} array")
            node = {}
            continue
        node = node[part]
    if isinstance(node, list) and node and all(isinstance(e, Mapping) for e in node):
        raise ApiError(
            "bad-request",
            f"{key}: is a list of entries; set one key of one entry "
            f"(e.g. {key}[0].name), or edit the file and use config-push",
        )
    return tuple(path)


def _entry_index(entries: list[Any], section: list[str], ident: str, key: str) -> int:
    id_key = sec.identity_key(tuple(section)) or "name"
    for index, entry in enumerate(entries):
        if isinstance(entry, Mapping) and entry.get(id_key) == ident:
            return index
    known = [str(e.get(id_key)) for e in entries if isinstance(e, Mapping) and id_key in e]
    raise ApiError(
        "not-found",
        f"{key}: no entry of {'.'.join(section)} has {id_key} = {ident!r} "
        f"(known: {', '.join(known) or 'none'}; or name it by index, {'.'.join(section)}[0])",
    )


def parse_value(text: str) -> Any:
    """VALUE as a TOML value (`24`, `true`, `["a", "b"]`, `"quoted"`); anything that is not
    TOML is the string itself, so `set hostname gw-2` needs no quotes."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_request(
    public_text: str,
    secrets_text: str | None,
    key: str,
    value: str,
    env: Mapping[str, str] | None = None,
) -> tuple[str, str | None]:
    """The (public, secrets) texts with `key` set to `value`, edited from the given texts (the
    head revision's) so comments and secrets survive. ApiError when the key names nothing or
    the result does not validate (naming the key); nothing has been proposed then."""
    doc = tomllib.loads(public_text)
    path = resolve_key(doc, key)
    try:
        public, secrets = set_value_pair(public_text, secrets_text, path, parse_value(value))
    except ConfigError as exc:
        issue = exc.issues[0]
        raise ApiError(
            "bad-request", f"{key}: {format_path(issue.path)}: {issue.message}"
        ) from None
    loaded = load_text(public, secrets, env)
    if loaded.issues:
        details = [f"{i.where or format_path(i.path)}: {i.message}" for i in loaded.issues]
        raise ApiError("invalid", f"set {key} = {value}: the config would be invalid", details)
    return public, secrets


# ================================================================ backup


def journal_export(records: Iterable[Any]) -> Iterator[str]:
    """The journal as `oxwrtd journal export` prints it (JSON lines, secrets as digests)."""
    return export_lines(records)


def make_backup(
    config_dir: Path,
    public_text: str,
    secrets_text: str | None,
    journal_lines: Iterable[str],
) -> bytes:
    """A .tar.gz of the running config pair, the identity keys (server key, authorized_keys,
    WireGuard server keys that live in the config dir; never VPN client keys) and the journal
    export. ApiError when it would not fit in one control-plane reply."""
    raw = load_text(public_text, secrets_text).raw
    members: list[tuple[str, bytes, int]] = [(PUBLIC_NAME, public_text.encode(), 0o644)]
    if secrets_text is not None:
        members.append((SECRETS_NAME, secrets_text.encode(), 0o600))
    seed = _read_bytes(config_dir / rs.SERVER_KEY)
    if seed is not None:
        members.append((rs.SERVER_KEY, seed, SERVER_KEY_MODE))
    keys_file = _authorized_keys_path(raw)
    authorized = _read_bytes(keys_file) if keys_file is not None else None
    if authorized is not None:
        members.append((rs.AUTHORIZED_KEYS, authorized, AUTHORIZED_KEYS_MODE))
    for name, path in _wireguard_keys(raw, config_dir):
        key = _read_bytes(path)
        if key is not None:
            members.append((name, key, WIREGUARD_KEY_MODE))
    journal = "".join(f"{line}\n" for line in journal_lines)
    if journal:
        members.append((rs.JOURNAL_EXPORT, journal.encode(), 0o600))
    data = _targz(members)
    if len(data) > MAX_BACKUP_BYTES:
        raise ApiError(
            "too-large",
            f"the backup is {len(data)} bytes compressed, over the {MAX_BACKUP_BYTES} that fit "
            "in one reply (the journal export is most of it); compact the journal on the "
            "router (`oxwrtd journal`) and retry",
        )
    return data


def _targz(members: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info(rs.PREFIX, 0, 0o755, tarfile.DIRTYPE))
        for name, data, mode in members:
            tar.addfile(_info(rs.PREFIX + name, len(data), mode, tarfile.REGTYPE), io.BytesIO(data))
    return gzip.compress(buf.getvalue(), compresslevel=9, mtime=BACKUP_MTIME)


def _info(name: str, size: int, mode: int, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type, info.mtime = size, mode, kind, BACKUP_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _authorized_keys_path(raw: Mapping[str, Any]) -> Path | None:
    """The authorized_keys file the control plane of `raw` reads (as oxwrtd.control.acl does)."""
    control = raw.get("control")
    if not isinstance(control, Mapping):
        return None
    named = control.get("authorized_keys", DEFAULT_AUTHORIZED_KEYS)
    return Path(named) if isinstance(named, str) else None


def _wireguard_keys(raw: Mapping[str, Any], config_dir: Path) -> list[tuple[str, Path]]:
    """[[wireguard]] server keys kept directly in the config dir (restore writes them there).
    VPN client keys ([[vpn_client]], vpn/) are never included: they belong to the provider
    account, and the backup may leave the router."""
    out: list[tuple[str, Path]] = []
    for entry in raw.get("wireguard") or []:
        named = entry.get("key_path", "/etc/oxwrt/wg0.key") if isinstance(entry, Mapping) else ""
        path = Path(named) if isinstance(named, str) else Path()
        if not path.name.endswith(".key") or path.parent.resolve() != config_dir.resolve():
            continue
        if (path.name, path) not in out:
            out.append((path.name, path))
    return out


# ================================================================ restore


@dataclass(frozen=True)
class KeyFile:
    path: Path
    data: bytes
    mode: int


@dataclass(frozen=True)
class RestorePlan:
    """What a validated backup turns into: the texts of the new revision, the key files to
    write into the config dir, and lines for the operator."""

    public_toml: str
    secrets_toml: str | None
    key_files: list[KeyFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def apply_restore(contents: rs.RestoreContents, config_dir: Path) -> RestorePlan:
    """The plan for restoring validated `contents` on a router whose config dir is `config_dir`.
    The config pair becomes a new revision (the runtime proposes and reloads it); key files that
    differ from what is on disk are written; the journal export is not replayed."""
    files: list[KeyFile] = []
    notes: list[str] = []
    server_key = config_dir / rs.SERVER_KEY
    if contents.server_seed is not None and contents.server_seed != _read_bytes(server_key):
        files.append(KeyFile(server_key, contents.server_seed, SERVER_KEY_MODE))
        notes.append(
            f"the server key from the backup was written to {server_key}; it takes effect when "
            "oxwrtd next starts, and clients must then pin the backed-up router's key"
        )
    if contents.authorized_keys is not None:
        raw = tomllib.loads(contents.public_toml)
        target = _authorized_keys_path(raw) or config_dir / rs.AUTHORIZED_KEYS
        if target.parent.resolve() != config_dir.resolve():
            notes.append(
                f"the restored config reads authorized_keys from {target}, outside "
                f"{config_dir}; the file from the backup was written to "
                f"{config_dir / rs.AUTHORIZED_KEYS} instead"
            )
            target = config_dir / rs.AUTHORIZED_KEYS
        data = contents.authorized_keys.encode()
        if data != _read_bytes(target):
            files.append(KeyFile(target, data, AUTHORIZED_KEYS_MODE))
    for name, data in sorted(contents.wireguard_keys.items()):
        if data != _read_bytes(config_dir / name):
            files.append(KeyFile(config_dir / name, data, WIREGUARD_KEY_MODE))
    if contents.journal_export is not None:
        count = sum(1 for line in contents.journal_export.splitlines() if line.strip())
        notes.append(
            f"the backup's journal export ({count} records) is kept for audit only; it was not "
            "replayed: this router's journal keeps its own history, and the restore is a new "
            "revision in it"
        )
    return RestorePlan(contents.public_toml, contents.secrets_toml, files, notes)


def refuse_while_confirm_pending(state: State, what: str) -> None:
    """A revision waiting for `confirm` blocks any other reload: refuse before anything is
    proposed or written, rather than leave a half-done restore or reset behind."""
    pending = state.pending_confirm
    if pending is not None:
        raise ApiError(
            "bad-request",
            f"revision {pending.revision} is waiting for confirm; `oxctl HOST confirm` it (or "
            f"let it revert) before the {what}",
        )


def write_key_files(files: Iterable[KeyFile]) -> list[str]:
    """Write each file atomically with its mode (temp file, fsync, rename, fsync the dir)."""
    lines = []
    for key in files:
        write_atomic(key.path, key.data, key.mode)
        lines.append(f"wrote {key.path} (mode {key.mode:04o})")
    return lines


# ================================================================ reset


def reset_texts(public_text: str, secrets_text: str | None) -> tuple[str, str | None]:
    """The factory default for a router now running `public_text`: a minimal built-in config
    (hostname `oxwrt`, no WAN, Wi-Fi, services or rules) that keeps the management path:
    `[control]` whole (listen, authorized_keys, clients, limits), every network of type "lan"
    and every network whose address a `control.listen` entry uses, and a zone accepting input
    from them. Secrets are kept only for the networks kept (a lan network has none today)."""
    public = tomllib.loads(public_text)
    control = public.get("control")
    if not isinstance(control, Mapping):
        raise ApiError(
            "invalid",
            "the running config has no [control] section; refusing a reset that "
            "would leave the router unmanageable",
        )
    listen_hosts = {_host(entry) for entry in control.get("listen", [])}
    kept = [
        net
        for net in public.get("networks", [])
        if isinstance(net, Mapping) and (net.get("type") == "lan" or _addresses(net) & listen_hosts)
    ]
    doc: dict[str, Any] = {"hostname": DEFAULT_HOSTNAME}
    if kept:
        doc["networks"] = [_management_network(net) for net in kept]
        doc["firewall"] = {
            "zones": [
                {
                    "name": "lan",
                    "networks": [str(net["name"]) for net in kept],
                    "default_input": "accept",
                    "default_forward": "drop",
                }
            ]
        }
    doc["control"] = dict(control)
    secrets = _kept_secrets(secrets_text, {str(net.get("name")) for net in kept})
    return RESET_HEADER + "\n" + dumps(doc), secrets


def _management_network(net: Mapping[str, Any]) -> dict[str, Any]:
    """The network as it was, minus what only made sense with a WAN (an ISP prefix slice)."""
    return {k: v for k, v in net.items() if k != "ipv6_subnet_id"}


def _host(listen: object) -> str:
    text = str(listen)
    host = text.rsplit(":", 1)[0] if ":" in text else text
    return host.strip("[]")


def _addresses(net: Mapping[str, Any]) -> set[str]:
    out = set()
    for key in ("address", "ipv6_address"):
        value = net.get(key)
        if isinstance(value, str):
            try:
                out.add(str(ip_address(value)))
            except ValueError:
                out.add(value)
    return out


def _kept_secrets(secrets_text: str | None, networks: set[str]) -> str | None:
    if secrets_text is None:
        return None
    entries = [
        entry
        for entry in tomllib.loads(secrets_text).get("networks", [])
        if isinstance(entry, Mapping) and entry.get("name") in networks
    ]
    return dumps({"networks": entries}) if entries else None


__all__ = [
    "KeyFile",
    "RestorePlan",
    "apply_restore",
    "journal_export",
    "make_backup",
    "parse_key",
    "parse_value",
    "refuse_while_confirm_pending",
    "reset_texts",
    "resolve_key",
    "set_request",
    "write_key_files",
]
