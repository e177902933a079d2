"""The cookbook (rootfs-overlay/etc/oxwrt) is the embedded default config: it must stay valid,
keep every secret in the secrets example, and keep exercising every section of the schema."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from schema import secrets as sec
from schema.config import Config, Firewall, Lan, Simple, Wan
from schema.load import load_text

COOKBOOK = Path(__file__).resolve().parents[2] / "rootfs-overlay" / "etc" / "oxwrt"
PUBLIC = COOKBOOK / "oxwrt.toml"
SECRETS_EXAMPLE = COOKBOOK / "oxwrt.secrets.toml.example"
AUTHORIZED_KEYS = COOKBOOK / "authorized_keys"

# Every key that names a secret in some section (schema.secrets.SECRET_FIELDS), for the text scan.
SECRET_WORDS = sorted({field.field for field in sec.SECRET_FIELDS})
# An assignment of one of them, live or commented out (`# password = "..."`): a secret written
# into a comment of the publishable file leaks just the same.
SECRET_ASSIGNMENT = re.compile(
    r"^\s*#?\s*(" + "|".join(w for w in SECRET_WORDS if w != "key") + r")\s*=", re.MULTILINE
)


def _public() -> dict[str, Any]:
    return tomllib.loads(PUBLIC.read_text(encoding="utf-8"))


def _secrets() -> dict[str, Any]:
    return tomllib.loads(SECRETS_EXAMPLE.read_text(encoding="utf-8"))


def test_pair_loads_with_no_issues() -> None:
    # load_text runs the whole load path: secrets merge, decode, and schema.validate.check
    # whenever that module exists. Text rather than load_pair: git cannot keep the example at
    # mode 0600, and a loose secrets file is (rightly) an issue of its own.
    loaded = load_text(
        PUBLIC.read_text(encoding="utf-8"),
        SECRETS_EXAMPLE.read_text(encoding="utf-8"),
        public_file=str(PUBLIC),
        secrets_file=str(SECRETS_EXAMPLE),
    )
    assert [str(issue) for issue in loaded.issues] == []
    assert loaded.ok


def test_merged_pair_decodes_into_config_with_every_secret_filled() -> None:
    config = msgspec.convert(sec.merge(_public(), _secrets()), Config)

    protected = [w for w in config.wifi if w.security != "open"]
    assert protected, "the cookbook shows at least one protected SSID"
    assert all(len(w.passphrase) >= 8 for w in protected)
    peers = [peer for wg in config.wireguard for peer in wg.peers]
    assert peers
    assert all(peer.preshared_key for peer in peers)
    assert config.ddns, "the cookbook shows one DDNS provider"
    for entry in config.ddns:
        provider = ("provider", type(entry).__struct_config__.tag)
        credentials = [f.field for f in sec.SECRET_FIELDS if f.variant == provider]
        assert credentials
        assert all(getattr(entry, field) for field in credentials)


def test_public_file_holds_no_secret_leaf() -> None:
    # any_variant: a `token` under any DDNS provider, or a `password` on any WAN, counts.
    assert sec.secret_leaves(_public(), any_variant=True) == []
    text = PUBLIC.read_text(encoding="utf-8")
    assert SECRET_ASSIGNMENT.findall(text) == []
    for entry in _public().get("ddns", []):
        assert "key" not in entry  # Hurricane Electric's secret is named plainly `key`


def test_secrets_example_is_exactly_what_the_splitter_would_write() -> None:
    # Splitting the merged pair gives both files back: the example holds every secret leaf the
    # public file needs and nothing else, each entry keyed by its identity (ssid / name).
    public, secrets = sec.split(sec.merge(_public(), _secrets()))
    assert public == _public()
    assert secrets == _secrets()


def test_secrets_example_pairs_every_entry_with_the_public_file() -> None:
    assert sec.unmatched(_public(), _secrets()) == []


def test_every_section_of_the_schema_appears_in_the_cookbook() -> None:
    doc = _public()
    missing = [f.encode_name for f in msgspec.structs.fields(Config) if f.encode_name not in doc]
    assert missing == []
    firewall = doc["firewall"]
    missing_fw = [f.encode_name for f in msgspec.structs.fields(Firewall)]
    assert [name for name in missing_fw if name not in firewall] == []


def test_every_network_type_is_shown_and_every_service_is_bounded() -> None:
    config = msgspec.convert(sec.merge(_public(), _secrets()), Config)
    assert {type(n) for n in config.networks} == {Wan, Lan, Simple}
    assert config.services
    assert all(s.memory_max and s.pids_max for s in config.services)


def test_authorized_keys_ships_without_a_key() -> None:
    # Shipping a live key would let its holder manage every router built from this image.
    lines = AUTHORIZED_KEYS.read_text(encoding="utf-8").splitlines()
    assert lines, "the file explains the format"
    assert [line for line in lines if line.strip() and not line.lstrip().startswith("#")] == []


@pytest.mark.lab
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("unshare") is None,
    reason="needs root, nft and unshare",
)
def test_raw_nft_lines_are_accepted_by_nft() -> None:
    # nft -c checks against the kernel without committing, inside a throwaway network
    # namespace so the machine's own ruleset is never touched.
    config = msgspec.convert(sec.merge(_public(), _secrets()), Config)
    assert config.firewall.raw_nft
    script = []
    for raw in config.firewall.raw_nft:
        hook = raw.chain if raw.chain in {"input", "forward", "output"} else None
        chain_spec = f" {{ type filter hook {hook} priority 0; policy accept; }}" if hook else ""
        script += [
            f"add table {raw.table}",
            f"add chain {raw.table} {raw.chain}{chain_spec}",
            f"add rule {raw.table} {raw.chain} {raw.rule}",
        ]
    result = subprocess.run(
        ["unshare", "--net", "--", "nft", "-c", "-f", "-"],
        input="\n".join(script) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
