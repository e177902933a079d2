"""ACL = [[control.clients]] ∪ authorized_keys, as Ed25519 keys looked up by X25519 form."""

from __future__ import annotations

import os
from pathlib import Path

from nacl.signing import SigningKey

from oxwrtd.control import acl
from schema.config import Control, ControlClient
from schema.wire import x25519_public_from_ed25519


def pub() -> bytes:
    return bytes(SigningKey(os.urandom(32)).verify_key)


def test_clients_and_file_merge_and_bad_entries_are_named(tmp_path: Path) -> None:
    a, b, c = pub(), pub(), pub()
    keys_file = tmp_path / "authorized_keys"
    keys_file.write_text(f"# ops\n{b.hex()}  # laptop\n\nnot-a-key\n{a.hex()}\n{c.hex()}#\n")
    control = Control(
        listen=["127.0.0.1:51820"],
        authorized_keys=str(keys_file),
        clients=[ControlClient(name="alice", key=a.hex()), ControlClient(name="bad", key="zz")],
    )
    table, problems = acl.load(control)
    assert len(table) == 3  # a appears twice, counted once, under its first name
    found = table.lookup(x25519_public_from_ed25519(a))
    assert found is not None
    assert found.name == "alice"
    laptop = table.lookup(x25519_public_from_ed25519(b))
    assert laptop is not None and laptop.name == "laptop"  # the comment after the key names it
    bare = table.lookup(x25519_public_from_ed25519(c))
    assert bare is not None and bare.name == f"{keys_file}:6"  # no comment: file and line
    assert problems == [
        'control.clients[1] (name "bad").key: expected 64 hex characters of an ed25519 '
        "public key, got 2",
        f"{keys_file}:4: expected 64 hex characters of an ed25519 public key, got 9",
    ]


def test_a_missing_file_is_an_empty_list(tmp_path: Path) -> None:
    control = Control(listen=["127.0.0.1:1"], authorized_keys=str(tmp_path / "none"))
    table, problems = acl.load(control)
    assert len(table) == 0
    assert problems == []


def test_an_empty_acl_listens_on_loopback_only_and_says_why() -> None:
    listen = ["[::1]:51820", "192.168.50.1:51820"]
    addrs, why = acl.listen_plan(listen, acl.Acl())
    assert addrs == [("::1", 51820)]
    assert why is not None
    assert "loopback only" in why
    addrs, why = acl.listen_plan(["0.0.0.0:4000"], acl.Acl())
    assert addrs == [("127.0.0.1", 4000)]


def test_a_non_empty_acl_listens_everywhere_asked() -> None:
    table, _ = acl.build([("x", pub().hex())], None)
    addrs, why = acl.listen_plan(["[::1]:51820", "192.168.50.1:51820"], table)
    assert addrs == [("::1", 51820), ("192.168.50.1", 51820)]
    assert why is None


def test_bad_listen_addresses_are_named() -> None:
    for bad in ("localhost:1", "1.2.3.4", "1.2.3.4:0", "[::1]:99999"):
        try:
            acl.split_host_port(bad)
        except ValueError as e:
            assert bad in str(e) or "does not appear" in str(e)
        else:
            raise AssertionError(f"{bad} accepted")
