"""Secrets: sealed with the device key before the journal, never stored in clear."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from journal_samples import DEVICE_KEY, pending

from journal.lmdb import LmdbStore
from oxwrtd.journal_tool import main
from oxwrtd.shell import devicekey
from schema.events import ConfigProposed
from schema.seal import (
    SealError,
    changed_leaves,
    flatten,
    seal,
    seal_leaves,
    unflatten,
    unseal,
)

SECRETS = {
    "wifi": [{"ssid": "home", "passphrase": "correct horse battery"}],
    "wan": {"password": "pppoe-Secret-42"},
}


def test_seal_round_trips_and_another_key_cannot_open():
    leaf = seal(DEVICE_KEY, "hunter22")
    assert unseal(DEVICE_KEY, leaf) == "hunter22"
    assert b"hunter22" not in leaf.box
    with pytest.raises(SealError, match="does not open with this device key"):
        unseal(bytes(32), leaf)
    with pytest.raises(SealError, match="32 bytes, got 5"):
        seal(b"short", "x")


def test_digest_shows_a_change_without_revealing_the_value():
    a = seal_leaves(DEVICE_KEY, {"wan.password": "one", "wifi[0].passphrase": "same"})
    b = seal_leaves(DEVICE_KEY, {"wan.password": "two", "wifi[0].passphrase": "same"}, a)
    assert b["wifi[0].passphrase"] is a["wifi[0].passphrase"]  # unchanged stays identical
    assert changed_leaves(a, b) == ["wan.password"]
    assert changed_leaves(a, {}) == ["wan.password", "wifi[0].passphrase"]


def test_flatten_and_unflatten_round_trip_a_secrets_document():
    leaves = flatten(SECRETS)
    assert leaves == {
        "wifi[0].ssid": "home",
        "wifi[0].passphrase": "correct horse battery",
        "wan.password": "pppoe-Secret-42",
    }
    assert unflatten(leaves) == SECRETS


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"wan": {"port": 22}}, "wan.port: a secret leaf must be a string, got int"),
        ({"a.b": "x"}, "key 'a.b' cannot name a secret leaf"),
    ],
)
def test_flatten_names_the_leaf_it_cannot_take(doc, message):
    with pytest.raises(SealError, match=message.replace("(", r"\(").replace(".", r"\.")):
        flatten(doc)


def test_no_secret_reaches_the_journal_or_its_export_in_clear(tmp_path, capsys):
    sealed = seal_leaves(DEVICE_KEY, flatten(SECRETS))
    event = ConfigProposed(revision=1, public_toml="[wan]\n", sealed_secrets=sealed)
    with LmdbStore(tmp_path) as store:
        store.append(pending([event]))
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for clear in ("correct horse battery", "pppoe-Secret-42"):
        assert clear.encode() not in on_disk
    assert main(["export", str(tmp_path)]) == 0
    exported = capsys.readouterr().out
    assert "pppoe-Secret-42" not in exported
    assert sealed["wan.password"].box.hex() not in exported
    assert sealed["wan.password"].digest.hex() in exported


def test_device_key_file_is_created_0600_and_reloaded(tmp_path):
    path = tmp_path / "device.key"
    key = devicekey.load_or_create(path)
    assert len(key) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert devicekey.load_or_create(path) == key


def test_device_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "device.key"
    path.write_bytes(os.urandom(32))
    path.chmod(0o644)
    with pytest.raises(devicekey.DeviceKeyError, match="mode 0644; it must be 0600"):
        devicekey.load(path)


def test_device_key_of_the_wrong_size_or_missing_is_refused(tmp_path):
    path = tmp_path / "device.key"
    path.write_bytes(b"x" * 31)
    path.chmod(0o600)
    with pytest.raises(devicekey.DeviceKeyError, match="32 bytes, got 31"):
        devicekey.load(path)
    with pytest.raises(devicekey.DeviceKeyError, match="cannot open device key"):
        devicekey.load(Path(tmp_path / "absent"))
