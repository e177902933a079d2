"""schema.tomledit: migration of inline secrets and comment-keeping `set` edits (pure tier; files
only under tmp_path)."""

from __future__ import annotations

import datetime
import stat
import tomllib
from pathlib import Path

import pytest

from schema.errors import ConfigError
from schema.load import load_pair, load_text
from schema.tomledit import (
    LONG_ARRAY,
    NEW_SECRETS_HEADER,
    dumps,
    migrate_inline_secrets,
    secure_secrets_mode,
    set_value,
    set_value_pair,
    write_atomic,
    write_pair,
)

PUBLIC_INLINE = """\
# Operator notes: keep this file publishable.
hostname = "router"  # the box's name

[[networks]]
name = "wan"
type = "wan"
iface = "eth1"
mode = "pppoe"
username = "isp-user"
password = "pppoe-Secret-1"  # from the ISP letter

[[networks]]
name = "lan"
type = "lan"
bridge = "br-lan"
address = "192.168.50.1"  # gateway for the house
prefix = 24

[[radios]]
phy = "phy0"
band = "2g"
channel = 6

# the family network
[[wifi]]
radio = "phy0"
ssid = "home"
network = "lan"
passphrase = "wifi-Secret-home"

[[wifi]]
radio = "phy0"
ssid = "guest"
network = "lan"
passphrase = "wifi-Secret-guest"

[[ddns]]
name = "duck"
provider = "duckdns"
domain = "myrouter"
token = "duck-Secret-token"

[control]
listen = ["[::1]:51820"]
"""

SECRET_VALUES = ("pppoe-Secret-1", "wifi-Secret-home", "wifi-Secret-guest", "duck-Secret-token")
COMMENTS = [line for line in PUBLIC_INLINE.splitlines() if "#" in line and "Secret" not in line]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    public = tmp_path / "oxwrt.toml"
    public.write_text(PUBLIC_INLINE)
    return public, tmp_path / "oxwrt.secrets.toml"


# ---------------------------------------------------------------- dumps


def test_dumps_round_trips_plain_documents() -> None:
    doc = {
        "firewall": {"zones": [{"name": "lan", "networks": ["lan"]}], "defaults": {"x": True}},
        "hostname": "r",
        "networks": [{"name": "a", "sqm": {"bandwidth_up_kbps": 10}}, {"name": "b"}],
        "empty": [],
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "nested": {"deeper": {"v": [1, 2]}, "k": "v"},
    }
    assert tomllib.loads(dumps(doc)) == doc


def test_long_arrays_round_trip_and_short_ones_stay_inline() -> None:
    """Long scalar arrays take the one-call path (tomlkit appends element by element in
    quadratic time: 16 s for 20,000 ipset entries); what they mean must not change."""
    entries = [f"10.{i // 256}.{i % 256}.0/24" for i in range(LONG_ARRAY * 40)]
    doc = {
        "ipsets": [{"name": "big", "entries": entries, "ports": [1, 2, 3]}],
        "numbers": list(range(LONG_ARRAY + 1)),
        "mixed": [[1, 2]] * (LONG_ARRAY + 1),  # arrays of arrays keep the element-wise path
    }
    text = dumps(doc)
    assert tomllib.loads(text) == doc
    assert "ports = [1, 2, 3]\n" in text


# ---------------------------------------------------------------- migration


def test_migration_moves_inline_secrets_and_keeps_comments_and_modes(
    pair: tuple[Path, Path],
) -> None:
    public, secrets = pair
    before = load_pair(public).raw
    result = migrate_inline_secrets(public)
    assert result.outcome == "migrated"
    assert result.moved == 4
    assert result.conflicts == []
    public_text = public.read_text()
    for value in SECRET_VALUES:
        assert value not in public_text
        assert value in secrets.read_text()
    for comment in COMMENTS:
        assert comment in public_text
    assert mode_of(public) == 0o644
    assert mode_of(secrets) == 0o600
    assert secrets.read_text().startswith(NEW_SECRETS_HEADER)
    after = load_pair(public)
    assert after.issues == []
    assert after.raw == before
    assert list(public.parent.glob(".*tmp")) == []
    assert migrate_inline_secrets(public).outcome == "clean"


def test_migration_merges_into_an_existing_secrets_file(pair: tuple[Path, Path]) -> None:
    public, secrets = pair
    existing = """\
# rotated by hand on Tuesday
[[wifi]]
ssid = "guest"
passphrase = "wifi-Secret-guest"

[[wifi]]
ssid = "home"
passphrase = "newer-home-pass"   # changed after the visit

[[radios]]
phy = "phy0"
channel = 11
"""
    secrets.write_text(existing)
    secrets.chmod(0o640)
    result = migrate_inline_secrets(public, secrets)
    assert result.outcome == "migrated"
    assert result.moved == 3  # pppoe + duck taken, guest equal so dropped, home conflicts
    [conflict] = result.conflicts
    assert conflict.path == ("wifi", 0, "passphrase")
    assert conflict.where == 'wifi[0] (ssid "home").passphrase'
    assert conflict.line == PUBLIC_INLINE.splitlines().index('passphrase = "wifi-Secret-home"') + 1
    assert "which wins" in conflict.message
    public_text, secrets_text = public.read_text(), secrets.read_text()
    assert "wifi-Secret-home" in public_text  # left for the operator to resolve
    for gone in ("pppoe-Secret-1", "wifi-Secret-guest", "duck-Secret-token"):
        assert gone not in public_text
    assert "# rotated by hand on Tuesday" in secrets_text
    assert "# changed after the visit" in secrets_text
    assert "newer-home-pass" in secrets_text
    assert mode_of(secrets) == 0o600
    merged = load_pair(public).raw
    assert merged["wifi"][0]["passphrase"] == "newer-home-pass"
    assert merged["networks"][0]["password"] == "pppoe-Secret-1"
    assert merged["radios"][0]["channel"] == 11


def test_migration_with_only_conflicts_writes_nothing(tmp_path: Path) -> None:
    public = tmp_path / "oxwrt.toml"
    public.write_text('[[wifi]]\nssid = "home"\npassphrase = "a-inline"\n')
    secrets = tmp_path / "oxwrt.secrets.toml"
    secrets.write_text('[[wifi]]\nssid = "home"\npassphrase = "b-file"\n')
    result = migrate_inline_secrets(public)
    assert result.outcome == "conflicts-only"
    assert len(result.conflicts) == 1
    assert "a-inline" in public.read_text()
    assert secrets.read_text() == '[[wifi]]\nssid = "home"\npassphrase = "b-file"\n'


def test_migration_without_public_file_or_secrets(tmp_path: Path) -> None:
    assert migrate_inline_secrets(tmp_path / "oxwrt.toml").outcome == "no-public-file"
    public = tmp_path / "oxwrt.toml"
    public.write_text('hostname = "r"\n')
    assert migrate_inline_secrets(public).outcome == "clean"
    assert not (tmp_path / "oxwrt.secrets.toml").exists()


def test_migration_of_malformed_public_file_names_the_line(tmp_path: Path) -> None:
    public = tmp_path / "oxwrt.toml"
    public.write_text('hostname = "r"\n[[wifi]\n')
    with pytest.raises(ConfigError) as caught:
        migrate_inline_secrets(public)
    [issue] = caught.value.issues
    assert issue.line == 2
    assert issue.file == str(public)


# ---------------------------------------------------------------- set


def test_set_value_keeps_every_comment() -> None:
    edited = set_value(PUBLIC_INLINE, ("networks", 1, "address"), "10.0.0.1")
    assert 'address = "10.0.0.1"  # gateway for the house' in edited
    assert edited.replace('"10.0.0.1"', '"192.168.50.1"') == PUBLIC_INLINE
    renamed = set_value(PUBLIC_INLINE, ("hostname",), "edge")
    assert 'hostname = "edge"  # the box\'s name' in renamed


def test_set_value_adds_keys_and_tables() -> None:
    edited = set_value(PUBLIC_INLINE, ("radios", 0, "country_code"), "DE")
    assert tomllib.loads(edited)["radios"][0]["country_code"] == "DE"
    edited = set_value(edited, ("dns", "listen_port"), 5353)
    assert tomllib.loads(edited)["dns"] == {"listen_port": 5353}
    edited = set_value(edited, ("networks", 1, "members"), ["lan1", "lan2"])
    assert tomllib.loads(edited)["networks"][1]["members"] == ["lan1", "lan2"]
    for comment in COMMENTS:
        assert comment in edited


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (("networks", 5, "address"), "no such entry"),
        (("hostname", "x"), "not a table"),
        (("control",), "is a table"),
        (("networks", 0), "set on a key"),
        (("networks", "address"), "name an entry by its index"),
        ((), "set on a key"),
    ],
)
def test_set_value_rejects_bad_paths(path: tuple[str | int, ...], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        set_value(PUBLIC_INLINE, path, "x")
    assert message in caught.value.issues[0].message


PUBLIC_CLEAN = """\
hostname = "router"  # keep

[[networks]]
name = "wan"
type = "wan"
iface = "eth1"
mode = "pppoe"
username = "isp-user"

[[radios]]
phy = "phy0"
band = "2g"
channel = 6

[[wifi]]
radio = "phy0"
ssid = "home"
network = "lan"

[[ddns]]
name = "duck"
provider = "duckdns"
domain = "myrouter"
"""

SECRETS_FILE = """\
# 0600
[[wifi]]
ssid = "home"
passphrase = "wifi-Secret-home"

[[ddns]]
name = "duck"
token = "duck-Secret-token"

[[radios]]
phy = "phy0"
channel = 11  # overridden for the lab
"""


def test_set_secret_goes_to_secrets_and_keeps_other_secrets() -> None:
    public, secrets = set_value_pair(
        PUBLIC_CLEAN, SECRETS_FILE, ("networks", 0, "password"), "new-pppoe-pw"
    )
    assert public == PUBLIC_CLEAN
    assert secrets is not None
    assert "# 0600" in secrets
    assert "# overridden for the lab" in secrets
    merged = load_text(public, secrets).raw
    assert merged["networks"][0]["password"] == "new-pppoe-pw"
    assert merged["wifi"][0]["passphrase"] == "wifi-Secret-home"  # reference bug 5.18: kept
    assert merged["ddns"][0]["token"] == "duck-Secret-token"


def test_set_existing_secret_and_create_a_secrets_text() -> None:
    _, secrets = set_value_pair(PUBLIC_CLEAN, SECRETS_FILE, ("wifi", 0, "passphrase"), "rotated")
    assert secrets is not None
    assert tomllib.loads(secrets)["wifi"] == [{"ssid": "home", "passphrase": "rotated"}]
    public, fresh = set_value_pair(PUBLIC_CLEAN, None, ("wifi", 0, "passphrase"), "first-pass")
    assert public == PUBLIC_CLEAN
    assert fresh is not None
    assert tomllib.loads(fresh) == {"wifi": [{"ssid": "home", "passphrase": "first-pass"}]}


def test_set_secret_removes_an_inline_copy() -> None:
    public, secrets = set_value_pair(PUBLIC_INLINE, None, ("ddns", 0, "token"), "rotated-tok")
    assert "duck-Secret-token" not in public
    assert "rotated-tok" not in public
    assert secrets is not None
    assert load_text(public, secrets).raw["ddns"][0]["token"] == "rotated-tok"


def test_set_non_secret_edits_where_it_takes_effect() -> None:
    public, secrets = set_value_pair(PUBLIC_CLEAN, SECRETS_FILE, ("hostname",), "edge")
    assert secrets == SECRETS_FILE
    assert 'hostname = "edge"  # keep' in public
    # the secrets file overrides this radio's channel: the edit lands there, so it takes effect
    public, secrets = set_value_pair(PUBLIC_CLEAN, SECRETS_FILE, ("radios", 0, "channel"), 1)
    assert public == PUBLIC_CLEAN
    assert secrets is not None
    assert "channel = 1  # overridden for the lab" in secrets
    assert load_text(public, secrets).raw["radios"][0]["channel"] == 1


def test_set_secret_on_an_entry_without_identity_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        set_value_pair('[[wifi]]\nradio = "phy0"\n', None, ("wifi", 0, "passphrase"), "p")
    assert "no `ssid`" in caught.value.issues[0].message


def test_writers_never_persist_environment_values() -> None:
    env = {
        "OXWRT_SECRET__ddns__duck__token": "from-the-env",
        "OXWRT_SECRET__radios__phy0__channel": "1",
    }
    loaded = load_text(PUBLIC_CLEAN, SECRETS_FILE, env)
    assert loaded.raw["ddns"][0]["token"] == "from-the-env"
    public, secrets = set_value_pair(
        loaded.public_text, loaded.secrets_text, ("wifi", 0, "passphrase"), "rotated"
    )
    assert "from-the-env" not in public + (secrets or "")
    assert tomllib.loads(secrets or "")["radios"][0]["channel"] == 11


# ---------------------------------------------------------------- files


def test_write_atomic_sets_the_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "oxwrt.secrets.toml"
    target.write_text("old")
    target.chmod(0o644)
    write_atomic(target, "new = 1\n", 0o600)
    assert target.read_text() == "new = 1\n"
    assert mode_of(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oxwrt.secrets.toml"]


def test_secure_secrets_mode(tmp_path: Path) -> None:
    target = tmp_path / "oxwrt.secrets.toml"
    assert not secure_secrets_mode(target)
    target.write_text("")
    target.chmod(0o644)
    assert secure_secrets_mode(target)
    assert mode_of(target) == 0o600
    assert not secure_secrets_mode(target)


def test_migration_nests_peer_secrets_under_their_wireguard(tmp_path: Path) -> None:
    public = tmp_path / "oxwrt.toml"
    public.write_text(
        '[[wireguard]]\nname = "wg0"\nlisten_port = 1\n'
        '[[wireguard.peers]]\nname = "a"\npreshared_key = "psk-a"  # a\n'
        '[[wireguard.peers]]\nname = "b"\n'
        '[[wireguard]]\nname = "wg1"\nlisten_port = 2\n'
        '[[wireguard.peers]]\nname = "c"\npreshared_key = "psk-c"\n'
    )
    secrets = tmp_path / "oxwrt.secrets.toml"
    secrets.write_text('# mine\n[[wireguard]]\nname = "wg1"\n')
    before = load_pair(public).raw
    assert migrate_inline_secrets(public).moved == 2
    assert "psk" not in public.read_text()
    assert tomllib.loads(secrets.read_text()) == {
        "wireguard": [
            {"name": "wg1", "peers": [{"name": "c", "preshared_key": "psk-c"}]},
            {"name": "wg0", "peers": [{"name": "a", "preshared_key": "psk-a"}]},
        ]
    }
    assert load_pair(public).raw == before


def test_write_pair_gives_each_file_its_mode(tmp_path: Path) -> None:
    public, secrets = tmp_path / "oxwrt.toml", tmp_path / "oxwrt.secrets.toml"
    write_pair(public, 'hostname = "r"\n', secrets, '[[wifi]]\nssid = "a"\n')
    assert (mode_of(public), mode_of(secrets)) == (0o644, 0o600)
    secrets.unlink()
    write_pair(public, 'hostname = "s"\n', secrets, None)
    assert public.read_text() == 'hostname = "s"\n'
    assert not secrets.exists()
