"""The control-plane wire contract shared by `oxwrtd` and `oxctl`.

Owns: frame codec (4-byte big-endian length + msgpack body, 1 MiB cap both ways), the sans-IO
`FrameDecoder`, the RPC messages (requests tagged by `op`, responses by `kind`, lower-case tags of
the reference), the signed-request envelope with its secret commitments, and the 76-byte
pre-handshake trailer maths.
Invariants:
- any bytes, split anywhere, decode into the same frames or raise `WireError`, nothing else;
- messages are tolerant (unknown fields skipped) but an unknown `op`/`kind` is a clean `WireError`;
- a signature covers a domain tag, the server key, the per-connection nonce, the counter and the
  exact request bytes, so the journal can verify it offline with nothing but these bytes;
- those bytes never hold a secret in clear: `COMMITTED_FIELDS` travel as salted commitments,
  opened by the envelope's `openings`, which the signature does not cover and nothing journals.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import struct
from collections.abc import Mapping
from typing import Annotated, ClassVar, Final

import msgspec
from nacl import bindings as sodium
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

MAX_FRAME: Final = 1 << 20  # bytes of msgpack body; the reference's MAX_FRAME
HEADER: Final = struct.Struct(">I")

# Field size caps: a frame is already capped at 1 MiB, these stop one field from being a megabyte
# where a name is expected ("huge strings in fields" in issue 6's bad-input list).
Name = Annotated[str, msgspec.Meta(max_length=256)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_FRAME)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Key32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


class WireError(Exception):
    """The peer sent bytes that are not a valid frame or message. `code` is machine-readable."""

    def __init__(self, message: str, code: str = "malformed") -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- requests


class _Req(msgspec.Struct, tag_field="op", kw_only=True, omit_defaults=True):
    mutating: ClassVar[bool] = False


class Get(_Req, tag="get"):
    key: Name


class Set(_Req, tag="set"):
    mutating = True
    key: Name
    value: Text


class Reload(_Req, tag="reload"):
    """Apply the candidate. With `confirm_within_secs` the router reverts by itself unless a
    `confirm` arrives within that many seconds (commit-confirmed)."""

    mutating = True
    confirm_within_secs: Count | None = None
    comment: Name = ""


class ReloadDryRun(_Req, tag="reloaddryrun"):
    pass


class Confirm(_Req, tag="confirm"):
    mutating = True


class Status(_Req, tag="status"):
    pass


class Logs(_Req, tag="logs"):
    service: Name
    follow: bool = False


class Restart(_Req, tag="restart"):
    mutating = True
    service: Name


class Reset(_Req, tag="reset"):
    mutating = True
    confirm: bool = False


class Diag(_Req, tag="diag"):
    name: Name
    args: Annotated[list[Name], msgspec.Meta(max_length=64)] = []


DIAG_WITH_SIDE_EFFECTS: Final = frozenset({"stall", "wol"})


class FwUpdate(_Req, tag="fwupdate"):
    mutating = True
    size: Count
    sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    sig: Annotated[str, msgspec.Meta(pattern="^[0-9a-fA-F]{128}$")] | None = None


class FwApply(_Req, tag="fwapply"):
    mutating = True
    confirm: bool = False
    keep_settings: bool = True


class CrudList(msgspec.Struct, tag_field="crud", tag="list", frozen=True, kw_only=True):
    pass


class CrudGet(msgspec.Struct, tag_field="crud", tag="get", frozen=True, kw_only=True):
    name: Name


class CrudAdd(msgspec.Struct, tag_field="crud", tag="add", frozen=True, kw_only=True):
    json: Text


class CrudUpdate(msgspec.Struct, tag_field="crud", tag="update", frozen=True, kw_only=True):
    name: Name
    json: Text


class CrudRemove(msgspec.Struct, tag_field="crud", tag="remove", frozen=True, kw_only=True):
    name: Name


CrudAction = CrudList | CrudGet | CrudAdd | CrudUpdate | CrudRemove


class Collection(_Req, tag="collection"):
    collection: Name
    action: CrudAction


class ConfigDump(_Req, tag="configdump"):
    pass


class ConfigPush(_Req, tag="configpush"):
    """A whole public TOML, optionally with its secrets overlay (None keeps the router's secrets)
    and the revision it was edited from (a stale base is refused: optimistic concurrency)."""

    mutating = True
    toml: Text
    comment: Name = ""
    secrets: Text | None = None
    base_revision: Count | None = None


class VpnKeyUpload(_Req, tag="vpnkeyupload"):
    mutating = True
    name: Name
    private_key_b64: Name


class Backup(_Req, tag="backup"):
    pass


class Restore(_Req, tag="restore"):
    mutating = True
    data_b64: Text
    confirm: bool = False


class Rollback(_Req, tag="rollback"):
    """Return to revision `to`, or to the revision running at time `at` (see `parse_time`)."""

    mutating = True
    confirm: bool = False
    to: Count | None = None
    at: Name | None = None
    comment: Name = ""


class RollbackList(_Req, tag="rollbacklist"):
    pass


class Reboot(_Req, tag="reboot"):
    mutating = True
    confirm: bool = False


class WgEnroll(_Req, tag="wgenroll"):
    mutating = True
    name: Name
    allowed_ips: Name
    endpoint_host: Name
    dns: Name | None = None


class Log(_Req, tag="log"):
    limit: Count | None = None


class Show(_Req, tag="show"):
    rev: Count


class Diff(_Req, tag="diff"):
    rev1: Count
    rev2: Count | None = None


class Blame(_Req, tag="blame"):
    path: Name


class Opening(msgspec.Struct, frozen=True, kw_only=True):
    """The clear value behind one commitment in a signed request, and the salt that hides it."""

    salt: Key32
    value: Text


class Signed(_Req, tag="signed"):
    """A mutating request signed by the client key: see `signing_payload` for what is covered.
    `openings` (absent from older clients) reveal the request's committed secrets; they are not
    signed, but each must match the commitment that is (`open_commitments`)."""

    request: Annotated[bytes, msgspec.Meta(max_length=MAX_FRAME)]
    key: Key32
    signature: Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
    counter: Count
    openings: Annotated[dict[Name, Opening], msgspec.Meta(max_length=8)] = {}


Request = (
    Get
    | Set
    | Reload
    | ReloadDryRun
    | Confirm
    | Status
    | Logs
    | Restart
    | Reset
    | Diag
    | FwUpdate
    | FwApply
    | Collection
    | ConfigDump
    | ConfigPush
    | VpnKeyUpload
    | Backup
    | Restore
    | Rollback
    | RollbackList
    | Reboot
    | WgEnroll
    | Log
    | Show
    | Diff
    | Blame
    | Signed
)


def is_mutating(request: Request) -> bool:
    """Whether the request changes persistent or live state, and so must arrive signed."""
    if isinstance(request, Collection):
        return not isinstance(request.action, CrudList | CrudGet)
    if isinstance(request, Diag):
        return request.name in DIAG_WITH_SIDE_EFFECTS
    return request.mutating


def parse_time(text: str) -> float:
    """`Rollback.at`: Unix seconds, or ISO 8601 with an offset (`2026-11-28T18:00:00+00:00`,
    `...Z`). A time without an offset is refused: client and router may disagree on the zone
    (oxctl converts the operator's local time to Unix seconds before sending)."""
    text = text.strip()
    try:
        return float(text) if text.replace(".", "", 1).isdigit() else _iso(text)
    except ValueError as e:
        raise ValueError(f"time {text!r}: {e}") from None


def _iso(text: str) -> float:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            "not Unix seconds or an ISO 8601 time such as 2026-11-28T18:00:00+00:00"
        ) from None
    if moment.tzinfo is None:
        raise ValueError("no UTC offset; add one such as +00:00 or Z")
    return moment.timestamp()


# ---------------------------------------------------------------- responses


class _Resp(msgspec.Struct, tag_field="kind", kw_only=True, omit_defaults=True):
    terminal: ClassVar[bool] = True


class Ok(_Resp, tag="ok"):
    pass


class RevisionRow(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One config revision as `log` and `rollback-list` report it."""

    id: Count
    status: Name  # proposed / applied / failed / reverted
    time: float
    author: Name | None = None
    fingerprint: Name | None = None
    comment: Name = ""
    source: Name = ""
    hostname: Name = ""
    summary: Text = ""
    running: bool = False


class BlameRow(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """Which revision last changed a config path, who made it and why."""

    path: Name
    revision: Count
    time: float
    author: Name | None = None
    comment: Name = ""


class Value(_Resp, tag="value"):
    """Text for people in `value` (all the reference's client shows); the optional fields carry
    the same facts for scripts (`oxctl --json`) and are skipped by clients that do not know them."""

    value: Text
    running: Count | None = None
    candidate: Count | None = None
    revisions: Annotated[list[RevisionRow], msgspec.Meta(max_length=4096)] | None = None
    blame: BlameRow | None = None


class ServiceStatus(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    name: Name
    state: Name  # starting | running | crashed | stopped
    pid: Count | None = None
    restarts: Count = 0
    uptime_secs: Count = 0
    last_log: Text | None = None


class WanSummary(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    address: Name
    prefix: Count
    gateway: Name | None = None
    lease_seconds: Count = 0


class WanEntry(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    name: Name
    iface: Name
    priority: Count = 0
    healthy: bool = False
    active: bool = False
    address: Name | None = None
    gateway: Name | None = None


class VpnEntry(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    name: Name
    iface: Name
    priority: Count = 0
    healthy: bool = False
    active: bool = False
    endpoint: Name = ""
    probe_target: Name = ""


class ApStatus(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    ssid: Name
    iface: Name
    radio_phy: Name = ""
    band: Name = ""
    channel: Count = 0
    operstate: Name = ""


class WgPeerStatus(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    name: Name
    pubkey: Name
    endpoint: Name = ""
    last_handshake_secs_ago: Count | None = None
    rx_bytes: Count = 0
    tx_bytes: Count = 0


class WgIfaceStatus(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    iface: Name
    listen_port: Count = 0
    peers: list[WgPeerStatus] = []


class StatusReply(_Resp, tag="status"):
    services: list[ServiceStatus] = []
    supervisor_uptime_secs: Count = 0
    wan: WanSummary | None = None
    active_wan: Name | None = None
    wans: list[WanEntry] = []
    firewall_rules: Count = 0
    aps: list[ApStatus] = []
    wg: list[WgIfaceStatus] = []
    active_vpn: Name | None = None
    vpns: list[VpnEntry] = []
    # oxwrt additions (absent from the reference's reply; older clients skip them)
    hostname: Name = ""
    running_revision: Count | None = None
    candidate_revision: Count | None = None
    confirm_deadline: float | None = None  # Unix time the pending revision reverts at
    journal_seq: Count = 0
    journal_head: Name = ""  # hex hash of record journal_seq: an anchor for `journal verify`
    # the running revision is inside its health window: a failure or a crash goes back to this
    probation_fallback: Count | None = None
    probation_restarts: Count = 0  # unclean restarts inside the window so far
    problems: list[Text] = []  # e.g. files on disk that do not validate (the last good runs)


class LogLine(_Resp, tag="logline"):
    terminal = False
    line: Text


class FwProgress(_Resp, tag="fwprogress"):
    terminal = False
    bytes_received: Count


class Progress(_Resp, tag="progress"):
    """Keep-alive for long operations: the server sends one while the handler is quiet."""

    terminal = False
    message: Name = ""


class Err(_Resp, tag="err"):
    message: Text
    code: Name = ""
    details: Annotated[list[Text], msgspec.Meta(max_length=256)] = []


Response = Ok | Value | StatusReply | LogLine | FwProgress | Progress | Err


class Hello(msgspec.Struct, kw_only=True, frozen=True):
    """First frame on the server's unidirectional stream 3: the per-connection signing nonce."""

    nonce: Key32
    server_key: Key32
    # The router opens salted secret commitments (`open_commitments`). A client sends them only
    # when this is set: a router without it would apply the commitment string as the value.
    commitments: bool = False


# ---------------------------------------------------------------- frames

_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(Request)
_response_decoder = msgspec.msgpack.Decoder(Response)
_hello_decoder = msgspec.msgpack.Decoder(Hello)


class _Tagged(msgspec.Struct):
    op: object = None
    kind: object = None


_tag_decoder = msgspec.msgpack.Decoder(_Tagged)


def encode_body(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


def frame(body: bytes) -> bytes:
    """Length-prefix one msgpack body. Refuses (WireError) a body over the cap."""
    if len(body) > MAX_FRAME:
        raise WireError(
            f"frame of {len(body)} bytes exceeds the {MAX_FRAME}-byte limit", "frame_too_large"
        )
    return HEADER.pack(len(body)) + body


def encode(message: msgspec.Struct) -> bytes:
    return frame(encode_body(message))


def _decode(decoder: msgspec.msgpack.Decoder[object], body: bytes, field: str) -> object:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as e:
        try:
            tagged = _tag_decoder.decode(body)
        except msgspec.DecodeError:
            tagged = _Tagged()
        tag = getattr(tagged, field)
        if tag is None:
            raise WireError(f"message has no `{field}` field", "unknown_op") from None
        if f"`$.{field}`" in str(e):
            raise WireError(f"unknown {field} {tag!r}", "unknown_op") from None
        raise WireError(f"invalid {field} {tag!r}: {e}", "invalid_field") from None
    except msgspec.DecodeError as e:
        raise WireError(f"frame body is not msgpack: {e}", "malformed") from None


def decode_request(body: bytes) -> Request:
    return _decode(_request_decoder, body, "op")  # type: ignore[return-value]


def decode_response(body: bytes) -> Response:
    return _decode(_response_decoder, body, "kind")  # type: ignore[return-value]


def decode_hello(body: bytes) -> Hello:
    try:
        return _hello_decoder.decode(body)
    except msgspec.MsgspecError as e:
        raise WireError(f"bad hello frame: {e}", "malformed") from None


class FrameDecoder:
    """Sans-IO: feed any bytes, get back complete frame bodies; raises WireError on bad input.

    After a WireError the decoder is poisoned (every later call raises the same error), because
    the stream has lost its framing and nothing after it can be trusted.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame
        self._error: WireError | None = None

    def feed(self, data: bytes) -> list[bytes]:
        if self._error is not None:
            raise self._error
        self._buf += data
        bodies: list[bytes] = []
        while len(self._buf) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buf)
            if length > self._max:
                self._error = WireError(
                    f"frame of {length} bytes exceeds the {self._max}-byte limit",
                    "frame_too_large",
                )
                raise self._error
            end = HEADER.size + length
            if len(self._buf) < end:
                break
            bodies.append(bytes(self._buf[HEADER.size : end]))
            del self._buf[:end]
        return bodies

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf)

    def end_of_stream(self) -> None:
        """The peer finished sending: a partial frame left over is a truncation error."""
        if self._error is not None:
            raise self._error
        if self._buf:
            self._error = WireError(
                f"stream ended inside a frame ({len(self._buf)} bytes of it received)", "truncated"
            )
            raise self._error


# ---------------------------------------------------------------- signed requests

SIGNING_DOMAIN: Final = b"oxwrt-rpc-sig-v1\x00"
COUNTER: Final = struct.Struct(">Q")


def signing_payload(request_bytes: bytes, server_key: bytes, nonce: bytes, counter: int) -> bytes:
    """Exactly the bytes a client signs and the journal can re-verify offline."""
    return SIGNING_DOMAIN + server_key + nonce + COUNTER.pack(counter) + request_bytes


def sign_request(
    request: Request,
    seed: bytes,
    server_key: bytes,
    nonce: bytes,
    counter: int,
    *,
    commit: bool = True,
) -> Signed:
    """The envelope for `request`: its secrets are signed as commitments and sent as openings
    (`commit=False`, for a router whose hello does not offer them: signed in clear)."""
    committed, openings = commit_secrets(request) if commit else (request, {})
    body = encode_body(committed)
    signer = SigningKey(seed)
    sig = signer.sign(signing_payload(body, server_key, nonce, counter)).signature
    return Signed(
        request=body,
        key=bytes(signer.verify_key),
        signature=sig,
        counter=counter,
        openings=openings,
    )


def verify_signature(public_key: bytes, payload: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(public_key).verify(payload, signature)
    except (BadSignatureError, CryptoError, ValueError, TypeError):
        return False
    return True


# ---------------------------------------------------------------- secret commitments
# The journal keeps the signed bytes so anyone can re-check a signature offline, so those bytes
# must hold no secret. A secret-bearing field is signed as sha256(domain | salt | value) instead;
# the 32-byte random salt makes the commitment hiding (a short password cannot be guessed back
# from the journal) and sha256 makes it binding (no other value opens it).

COMMIT_DOMAIN: Final = b"oxwrt-secret-commit-v1\x00"
COMMIT_PREFIX: Final = "oxwrt-commit:"
SALT_BYTES: Final = 32

# The fields that may carry a secret in clear, per request type. `Set.value` is always committed:
# whether a key is secret depends on the router's config, which the client does not have, and a
# committed public value costs nothing (the runtime records it in the revision anyway).
COMMITTED_FIELDS: Final[Mapping[type[Request], tuple[str, ...]]] = {
    ConfigPush: ("secrets",),
    Set: ("value",),
    Restore: ("data_b64",),
}


def commitment(salt: bytes, value: str) -> str:
    digest = hashlib.sha256(COMMIT_DOMAIN + salt + value.encode()).hexdigest()
    return f"{COMMIT_PREFIX}sha256:{digest}"


def commit_secrets(request: Request) -> tuple[Request, dict[str, Opening]]:
    """`request` with each committed field (that has a value) replaced by a fresh commitment,
    and the openings that reveal them. A request without such fields comes back unchanged."""
    openings: dict[str, Opening] = {}
    for name in COMMITTED_FIELDS.get(type(request), ()):
        value = getattr(request, name)
        if value is not None:
            openings[name] = Opening(salt=os.urandom(SALT_BYTES), value=value)
    if not openings:
        return request, openings
    replaced = {name: commitment(o.salt, o.value) for name, o in openings.items()}
    return msgspec.structs.replace(request, **replaced), openings


def open_commitments(
    request: Request, openings: Mapping[str, Opening]
) -> tuple[Request, frozenset[str]]:
    """`request` (as signed) with its commitments replaced by the opened clear values, and the
    names of the fields that were committed. WireError if an opening names a field that is not
    committed, does not match its commitment, or a commitment arrives without its opening (it
    would otherwise be applied as a literal secret)."""
    fields = COMMITTED_FIELDS.get(type(request), ())
    op = type(request).__struct_config__.tag
    for name in openings:
        if name not in fields:
            raise WireError(f"{op} has no committed field {name!r} to open", "malformed")
    clear: dict[str, str] = {}
    for name in fields:
        signed = getattr(request, name)
        opening = openings.get(name)
        if opening is None:
            if isinstance(signed, str) and signed.startswith(COMMIT_PREFIX):
                raise WireError(
                    f"field {name} of {op} is a signed commitment but no opening was sent",
                    "malformed",
                )
            continue
        if signed != commitment(opening.salt, opening.value):
            raise WireError(
                f"secrets do not match the signed commitment for field {name}",
                "signature_invalid",
            )
        clear[name] = opening.value
    if not clear:
        return request, frozenset()
    return msgspec.structs.replace(request, **clear), frozenset(clear)


# ---------------------------------------------------------------- pre-handshake trailer
# Layout (upstream-control-plane.md §1.3): client X25519 public key (32) | timestamp u32 BE (4) |
# nonce (8) | MAC1 (16) | MAC2 (16, zeros: the reference's cookie mode is dead code).

TRAILER_LEN: Final = 76
MAC_LEN: Final = 16
_TS: Final = struct.Struct(">I")


def x25519_public_from_ed25519(public_key: bytes) -> bytes:
    """The Montgomery form of an Ed25519 public key; ValueError if it is not a curve point."""
    try:
        return bytes(sodium.crypto_sign_ed25519_pk_to_curve25519(public_key))
    except (CryptoError, ValueError, TypeError) as e:
        raise ValueError(f"not a valid ed25519 public key: {e}") from None


def x25519_secret_from_seed(seed: bytes) -> bytes:
    signer = SigningKey(seed)
    return bytes(signer.to_curve25519_private_key())


def x25519_public_from_secret(secret: bytes) -> bytes:
    return bytes(sodium.crypto_scalarmult_base(secret))


def mac1(shared_secret: bytes, packet: bytes, timestamp: bytes, nonce: bytes) -> bytes:
    return hmac.new(shared_secret, packet + timestamp + nonce, hashlib.sha256).digest()[:MAC_LEN]


def build_trailer(
    packet: bytes,
    *,
    client_secret: bytes,
    client_public: bytes,
    server_x25519: bytes,
    timestamp: int,
    nonce: bytes,
) -> bytes:
    shared = bytes(sodium.crypto_scalarmult(client_secret, server_x25519))
    ts = _TS.pack(timestamp & 0xFFFFFFFF)
    return client_public + ts + nonce + mac1(shared, packet, ts, nonce) + bytes(MAC_LEN)


class Trailer(msgspec.Struct, frozen=True):
    client_key: bytes
    timestamp: int
    nonce: bytes
    mac1: bytes
    timestamp_bytes: bytes


def split_trailer(datagram: bytes) -> tuple[bytes, Trailer] | None:
    """(QUIC bytes, trailer), or None if the datagram is too short to carry one."""
    if len(datagram) <= TRAILER_LEN:
        return None
    cut = len(datagram) - TRAILER_LEN
    t = datagram[cut:]
    ts = t[32:36]
    return datagram[:cut], Trailer(
        client_key=t[:32],
        timestamp=_TS.unpack(ts)[0],
        nonce=t[36:44],
        mac1=t[44:60],
        timestamp_bytes=ts,
    )


def is_initial(datagram: bytes) -> bool:
    """QUIC v1 long header of type Initial (RFC 9000 §17.2.2: 0b1100xxxx)."""
    return bool(datagram) and datagram[0] & 0xF0 == 0xC0


def is_long_header(datagram: bytes) -> bool:
    return bool(datagram) and datagram[0] & 0x80 == 0x80


__all__ = [
    "COMMITTED_FIELDS",
    "COMMIT_PREFIX",
    "MAX_FRAME",
    "TRAILER_LEN",
    "Backup",
    "Blame",
    "BlameRow",
    "Collection",
    "ConfigDump",
    "ConfigPush",
    "Confirm",
    "CrudAction",
    "CrudAdd",
    "CrudGet",
    "CrudList",
    "CrudRemove",
    "CrudUpdate",
    "Diag",
    "Diff",
    "Err",
    "FrameDecoder",
    "FwApply",
    "FwProgress",
    "FwUpdate",
    "Get",
    "Hello",
    "Log",
    "LogLine",
    "Logs",
    "Ok",
    "Opening",
    "Progress",
    "Reboot",
    "Reload",
    "ReloadDryRun",
    "Request",
    "Reset",
    "Response",
    "Restart",
    "Restore",
    "RevisionRow",
    "Rollback",
    "RollbackList",
    "Set",
    "Show",
    "Signed",
    "Status",
    "StatusReply",
    "Trailer",
    "Value",
    "VpnKeyUpload",
    "WgEnroll",
    "WireError",
    "build_trailer",
    "commit_secrets",
    "commitment",
    "decode_hello",
    "decode_request",
    "decode_response",
    "encode",
    "encode_body",
    "frame",
    "is_initial",
    "is_long_header",
    "is_mutating",
    "mac1",
    "open_commitments",
    "parse_time",
    "sign_request",
    "signing_payload",
    "split_trailer",
    "verify_signature",
    "x25519_public_from_ed25519",
    "x25519_public_from_secret",
    "x25519_secret_from_seed",
]
