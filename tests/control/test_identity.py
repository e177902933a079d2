"""The server key file: created 0600 once, refused (never regenerated) when wrong."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from oxwrtd.control import identity


def test_first_start_creates_a_0600_seed_and_later_starts_reuse_it(tmp_path: Path) -> None:
    first, created = identity.load_or_create(tmp_path)
    assert created
    path = tmp_path / "key.ed25519"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == first.seed
    again, created = identity.load_or_create(tmp_path)
    assert not created
    assert again.public_key == first.public_key


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_a_wrong_size_file_is_refused_and_left_alone(tmp_path: Path, size: int) -> None:
    path = tmp_path / "key.ed25519"
    path.write_bytes(b"k" * size)
    path.chmod(0o600)
    with pytest.raises(identity.IdentityError, match="expected a raw 32-byte ed25519 seed"):
        identity.load_or_create(tmp_path)
    assert path.read_bytes() == b"k" * size


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.ed25519"
    path.write_bytes(bytes(32))
    path.chmod(0o644)
    with pytest.raises(identity.IdentityError, match="chmod 600"):
        identity.load_or_create(tmp_path)


def test_a_symlinked_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(bytes(32))
    (tmp_path / "key.ed25519").symlink_to(tmp_path / "real")
    with pytest.raises(identity.IdentityError, match="cannot open"):
        identity.load_or_create(tmp_path)


def test_the_certificate_carries_the_seed_public_key(tmp_path: Path) -> None:
    ident, _ = identity.load_or_create(tmp_path)
    cert, _key = ident.certificate()
    raw = cert.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert raw == ident.public_key
    assert len(ident.public_hex) == 64
