"""Where oxctl finds its keys, and `keygen`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from clients import keys


def test_keygen_writes_a_0600_seed_and_prints_its_public_key(tmp_path: Path) -> None:
    path = tmp_path / "oxctl.key"
    public = keys.keygen(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    seed = keys.client_seed(str(path), environ={})
    assert keys.public_key(seed).hex() == public
    with pytest.raises(keys.KeyFileError, match="already exists; refusing to overwrite"):
        keys.keygen(path)
    assert keys.client_seed(str(path), environ={}) == seed


def test_the_key_file_wins_over_the_environment_and_raw_seeds_work(tmp_path: Path) -> None:
    path = tmp_path / "raw.key"
    path.write_bytes(b"\x07" * 32)
    path.chmod(0o600)
    assert keys.client_seed(str(path), {"SQUIC_CLIENT_KEY": "aa" * 32}) == b"\x07" * 32
    assert keys.client_seed(None, {"SQUIC_CLIENT_KEY": " " + "ab" * 32 + "\n"}) == b"\xab" * 32


def test_a_readable_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "open.key"
    path.write_text("ab" * 32)
    path.chmod(0o644)
    with pytest.raises(keys.KeyFileError, match="chmod 600"):
        keys.client_seed(str(path), {})


@pytest.mark.parametrize(
    ("env", "arg", "words"),
    [
        ({}, None, "no server key to pin"),
        ({"SQUIC_SERVER_KEY": "xyz"}, None, "SQUIC_SERVER_KEY: not hexadecimal"),
        ({}, "abcd", "--server-key: expected 64 hex characters, got 4"),
    ],
)
def test_server_key_errors_say_where_and_what(
    env: dict[str, str], arg: str | None, words: str
) -> None:
    with pytest.raises(keys.KeyFileError, match=words):
        keys.server_key(arg, env)
    assert keys.server_key("cd" * 32, {"SQUIC_SERVER_KEY": "ab" * 32}) == b"\xcd" * 32


def test_no_client_key_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(keys.KeyFileError, match="oxctl keygen FILE"):
        keys.client_seed(None, {})
    with pytest.raises(keys.KeyFileError, match="cannot open the client key"):
        keys.client_seed(str(tmp_path / "missing"), {})
    bad = tmp_path / "bad.key"
    bad.write_bytes(b"\xff" * 10)
    bad.chmod(0o600)
    with pytest.raises(keys.KeyFileError, match="neither a raw 32-byte seed nor 64 hex"):
        keys.client_seed(str(bad), {})
