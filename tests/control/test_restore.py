"""Restore tarball validation: every hostile or broken input is refused naming its member."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from collections.abc import Callable

import pytest

from oxwrtd.control.restore import (
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    MAX_TOTAL_BYTES,
    RestoreError,
    validate,
)
from tests.control.fake_api import PUBLIC_TOML, tarball

SEED = bytes(range(32))
WG_KEY = base64.b64encode(bytes(range(32, 64))) + b"\n"
CLIENT = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"  # RFC 8032 test 1


def custom(*adders: Callable[[tarfile.TarFile], None], config: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        if config:
            add_file(tar, "oxwrt/oxwrt.toml", PUBLIC_TOML.encode())
        for add in adders:
            add(tar)
    return buf.getvalue()


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def special(name: str, kind: bytes, linkname: str = "") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        tar.addfile(info)

    return add


def test_a_full_backup_is_accepted_with_its_contents() -> None:
    export = "\n".join(json.dumps({"seq": s, "tag": "ConfigProposed"}) for s in (1, 2, 5))
    data = tarball(
        {
            "oxwrt/oxwrt.toml": PUBLIC_TOML.encode(),
            "oxwrt/oxwrt.secrets.toml": b"# no secrets\n",
            "oxwrt/key.ed25519": SEED,
            "oxwrt/authorized_keys": f"# ops\n{CLIENT}  # laptop\n".encode(),
            "oxwrt/wg0.key": WG_KEY,
            "oxwrt/journal.jsonl": export.encode(),
        }
    )
    contents = validate(data)
    assert contents.public_toml == PUBLIC_TOML
    assert contents.secrets_toml == "# no secrets\n"
    assert contents.server_seed == SEED
    assert contents.authorized_keys == f"# ops\n{CLIENT}  # laptop\n"
    assert contents.wireguard_keys == {"wg0.key": WG_KEY}
    assert contents.journal_export == export
    assert contents.members[0] == "oxwrt/oxwrt.toml"


def test_directory_entries_are_fine() -> None:
    contents = validate(custom(special("oxwrt", tarfile.DIRTYPE)))
    assert contents.members == ("oxwrt/oxwrt.toml",)


def refused(data: bytes) -> RestoreError:
    with pytest.raises(RestoreError) as e:
        validate(data)
    return e.value


@pytest.mark.parametrize(
    ("member", "needle"),
    [
        ("oxwrt/../../etc/shadow", "oxwrt/../../etc/shadow: path escapes"),
        ("../oxwrt.toml", "../oxwrt.toml: path escapes"),
        ("/etc/oxwrt/oxwrt.toml", "/etc/oxwrt/oxwrt.toml: absolute path refused"),
        ("etc/passwd", "etc/passwd: outside oxwrt/"),
        ("oxwrt/hostapd.conf", "oxwrt/hostapd.conf: not a file a backup holds"),
        ("oxwrt/vpn/mullvad.key", "oxwrt/vpn/mullvad.key: VPN client keys are never"),
    ],
)
def test_paths_outside_the_backup_are_refused(member: str, needle: str) -> None:
    assert needle in str(refused(custom(lambda t: add_file(t, member, b"x"))))


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        (tarfile.SYMTYPE, "oxwrt/wg0.key: is a symbolic link (to '/etc/shadow')"),
        (tarfile.LNKTYPE, "oxwrt/wg0.key: is a hard link (to '/etc/shadow')"),
        (tarfile.CHRTYPE, "oxwrt/wg0.key: is a device file"),
        (tarfile.BLKTYPE, "oxwrt/wg0.key: is a device file"),
        (tarfile.FIFOTYPE, "oxwrt/wg0.key: is a FIFO"),
    ],
)
def test_links_devices_and_fifos_are_refused(kind: bytes, needle: str) -> None:
    assert needle in str(refused(custom(special("oxwrt/wg0.key", kind, "/etc/shadow"))))


def test_a_missing_config_is_refused_listing_what_is_there() -> None:
    error = refused(tarball({"oxwrt/key.ed25519": SEED}))
    assert "no oxwrt/oxwrt.toml" in str(error)
    assert "It has: oxwrt/key.ed25519" in str(error)


def test_an_invalid_config_is_refused_with_every_issue() -> None:
    error = refused(tarball({"oxwrt/oxwrt.toml": b'hostname = "x"\nbogus = 1\n'}))
    assert "oxwrt/oxwrt.toml: the config in the tarball is invalid" in str(error)
    assert any("bogus" in d for d in error.details)
    assert all(d.startswith("oxwrt/oxwrt.toml") for d in error.details)


def test_an_unparsable_config_and_non_utf8_are_refused() -> None:
    assert "invalid" in str(refused(tarball({"oxwrt/oxwrt.toml": b"hostname = = 1\n"})))
    assert "oxwrt/oxwrt.toml: not UTF-8" in str(refused(tarball({"oxwrt/oxwrt.toml": b"\xff\xfe"})))


def test_a_server_key_of_the_wrong_size_is_refused() -> None:
    data = custom(lambda t: add_file(t, "oxwrt/key.ed25519", SEED.hex().encode()))
    assert "oxwrt/key.ed25519: a server key is a raw 32-byte seed, this one has 64" in str(
        refused(data)
    )


def test_an_oversized_member_is_refused_by_its_header() -> None:
    def big(tar: tarfile.TarFile) -> None:
        add_file(tar, "oxwrt/wg0.key", bytes(MAX_MEMBER_BYTES + 1))

    assert "oxwrt/wg0.key: 4194305 bytes, over the 4 MiB" in str(refused(custom(big)))


def test_a_gzip_bomb_is_refused_without_expanding_it() -> None:
    bomb = gzip.compress(bytes(MAX_TOTAL_BYTES + 1024))
    assert len(bomb) < 64 * 1024
    assert "expands to more than 16 MiB" in str(refused(bomb))


def test_too_many_members_are_refused() -> None:
    def many(tar: tarfile.TarFile) -> None:
        for i in range(MAX_MEMBERS + 1):
            add_file(tar, f"oxwrt/wg{i}.key", b"k")

    assert f"more than {MAX_MEMBERS} members" in str(refused(custom(many)))


def test_a_duplicate_member_is_refused() -> None:
    data = custom(lambda t: add_file(t, "oxwrt/oxwrt.toml", b'hostname = "evil"\n'))
    assert "oxwrt/oxwrt.toml: appears twice" in str(refused(data))


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "not a gzip file"),
        (b"PK\x03\x04 a zip", "not a gzip file"),
        (gzip.compress(b"not a tar at all" * 40), "not a valid tar archive"),
        (custom()[:-30], "truncated"),
        (custom() + b"junk", "unexpected data after the end"),
        (b"\x1f\x8b\x08\x00garbage-deflate", "corrupt"),
    ],
)
def test_broken_archives_are_refused(data: bytes, needle: str) -> None:
    assert needle in str(refused(data))


@pytest.mark.parametrize(
    ("export", "needle"),
    [
        ("{not json", "oxwrt/journal.jsonl:1: not JSON"),
        (
            '{"seq": 1, "tag": "A"}\n[1]',
            'oxwrt/journal.jsonl:2: a journal entry needs an integer "seq"',
        ),
        ('{"seq": 2, "tag": "A"}\n{"seq": 2, "tag": "B"}', "oxwrt/journal.jsonl:2: seq 2 after 2"),
    ],
)
def test_a_broken_journal_export_is_refused_by_line(export: str, needle: str) -> None:
    data = custom(lambda t: add_file(t, "oxwrt/journal.jsonl", export.encode()))
    assert needle in str(refused(data))


def test_a_bad_authorized_key_line_is_refused_by_line() -> None:
    data = custom(lambda t: add_file(t, "oxwrt/authorized_keys", f"{CLIENT}\nabc\n".encode()))
    assert "oxwrt/authorized_keys:2: expected 64 hex characters" in str(refused(data))


@pytest.mark.parametrize("key", [b"c2VjcmV0\n", b"not base64 at all", SEED])
def test_a_wireguard_key_must_be_base64_of_32_bytes(key: bytes) -> None:
    data = custom(lambda t: add_file(t, "oxwrt/wg0.key", key))
    assert "oxwrt/wg0.key: not a WireGuard key" in str(refused(data))
