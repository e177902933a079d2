"""set, backup, restore and reset: the pure functions of oxwrtd.admin on the cookbook, then the
same workflows through the Runtime over the fakes (as in test_runtime.py).

Asserts on texts, tarball members, files on disk, the journal and the fake kernel."""

from __future__ import annotations

import base64
import io
import os
import stat
import tarfile
import tomllib
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from journal.verify import verify
from oxwrtd import admin
from oxwrtd.control import restore
from oxwrtd.control.api import ApiError, Author
from schema.codec import decode
from schema.events import ConfigProposed
from schema.load import load_text
from tests.runtime.test_runtime import OPERATOR, Router, public, secrets

COOKBOOK = Path(__file__).resolve().parents[2] / "rootfs-overlay" / "etc" / "oxwrt"
PUBLIC = (COOKBOOK / "oxwrt.toml").read_text()
SECRETS = (COOKBOOK / "oxwrt.secrets.toml.example").read_text()
SEED = bytes(range(100, 132))
CLIENT_KEY = "6ba917e34dc8a66b6f6b1912572ca53d6d32f672891607953d83eda15594a22b"
WG_KEY = base64.b64encode(bytes(range(32))).decode() + "\n"


def merged(public_text: str, secrets_text: str | None) -> dict:  # type: ignore[type-arg]
    loaded = load_text(public_text, secrets_text)
    assert loaded.ok, loaded.issues
    return loaded.raw


# ================================================================ set


def test_set_keeps_every_comment_and_every_secret() -> None:
    pub, sec = admin.set_request(PUBLIC, SECRETS, "hostname", "gw-2")
    assert merged(pub, sec)["hostname"] == "gw-2"
    assert sec == SECRETS
    assert pub == PUBLIC.replace('hostname = "homelab-gw"', 'hostname = "gw-2"')


def test_set_addresses_entries_by_identity_or_index() -> None:
    pub, _ = admin.set_request(PUBLIC, SECRETS, "firewall.rules.guest-dns.dest_port", "5353")
    pub, _ = admin.set_request(pub, SECRETS, "firewall.rules[1].action", '"drop"')
    pub, _ = admin.set_request(pub, SECRETS, "radios.phy1.channel", "40")
    rules = merged(pub, SECRETS)["firewall"]["rules"]
    assert rules[0]["dest_port"] == 5353 and rules[1]["action"] == "drop"
    assert merged(pub, SECRETS)["radios"][1]["channel"] == 40
    assert "# Guests need the router's DNS and DHCP" in pub


def test_set_of_a_secret_writes_the_secrets_text_only() -> None:
    pub, sec = admin.set_request(PUBLIC, SECRETS, "wifi.homelab.passphrase", "a-new-passphrase-1")
    assert pub == PUBLIC and sec is not None
    assert "a-new-passphrase-1" in sec and "welcome-guests-2026" in sec
    assert merged(pub, sec)["wifi"][0]["passphrase"] == "a-new-passphrase-1"


def test_values_are_toml_with_a_plain_string_fallback() -> None:
    assert admin.parse_value("24") == 24
    assert admin.parse_value("true") is True
    assert admin.parse_value('["a", "b"]') == ["a", "b"]
    assert admin.parse_value("gw-2") == "gw-2"
    assert admin.parse_value("192.168.1.1") == "192.168.1.1"
    assert admin.parse_key('wifi."my.ssid".channel') == ["wifi", "my.ssid", "channel"]


@pytest.mark.parametrize(
    ("key", "value", "code", "says"),
    [
        ("networks.nope.address", "10.0.0.1", "not-found", "no entry of networks has name"),
        ("firewall.rules[99].action", "drop", "not-found", "has 16 entries, no index 99"),
        ("hostnme", "x", "invalid", "did you mean `hostname`"),
        ("control.max_connections", "many", "invalid", "expected integer"),
        ("networks", "x", "bad-request", "is a list of entries"),
        ("hostname..x", "x", "bad-request", "cannot read the key at column 10"),
        ("hostname.x", "x", "not-found", "is a value, it has no keys"),
    ],
)
def test_a_key_that_names_nothing_is_a_clear_error(
    key: str, value: str, code: str, says: str
) -> None:
    with pytest.raises(ApiError) as err:
        admin.set_request(PUBLIC, SECRETS, key, value)
    assert err.value.code == code
    assert key.split(".", maxsplit=1)[0] in err.value.message
    assert says in err.value.message + " ".join(err.value.details)


# ================================================================ backup / restore


def config_dir(tmp_path: Path) -> tuple[Path, str]:
    """A config dir with a server key, authorized_keys, a WireGuard key and a VPN client key,
    and the cookbook pointed at it."""
    etc = tmp_path / "etc"
    (etc / "vpn").mkdir(parents=True)
    (etc / "key.ed25519").write_bytes(SEED)
    (etc / "authorized_keys").write_text(f"# ops\n{CLIENT_KEY}\n")
    (etc / "wg0.key").write_text(WG_KEY)
    (etc / "vpn" / "provider-ams.key").write_text(WG_KEY)
    text = PUBLIC.replace("/etc/oxwrt/", f"{etc}/")
    return etc, text


def members(tarball: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar
            if m.isfile()
        }


def test_a_backup_restores_through_the_validator_and_holds_no_vpn_key(tmp_path: Path) -> None:
    etc, text = config_dir(tmp_path)
    journal = ['{"seq": 1, "tag": "x"}', '{"seq": 2, "tag": "y"}']
    tarball = admin.make_backup(etc, text, SECRETS, journal)
    contents = restore.validate(tarball)
    assert contents.public_toml == text and contents.secrets_toml == SECRETS
    assert contents.server_seed == SEED and CLIENT_KEY in (contents.authorized_keys or "")
    assert contents.wireguard_keys == {"wg0.key": WG_KEY.encode()}
    assert contents.journal_export == "".join(f"{line}\n" for line in journal)
    assert not any("vpn" in name or "provider" in name for name in members(tarball))
    assert admin.make_backup(etc, text, SECRETS, journal) == tarball  # deterministic


def test_a_backup_over_one_frame_is_refused(tmp_path: Path) -> None:
    etc, text = config_dir(tmp_path)
    noise = [os.urandom(600).hex() for _ in range(1500)]  # incompressible, ~1.8 MB
    with pytest.raises(ApiError) as err:
        admin.make_backup(etc, text, SECRETS, noise)
    assert err.value.code == "too-large" and "compact the journal" in err.value.message


def test_restore_writes_keys_with_their_modes_and_never_replays_the_journal(
    tmp_path: Path,
) -> None:
    etc, text = config_dir(tmp_path)
    contents = restore.validate(admin.make_backup(etc, text, SECRETS, ['{"seq": 1, "tag": "x"}']))
    target = tmp_path / "other"
    target.mkdir()
    plan = admin.apply_restore(contents, target)
    assert (plan.public_toml, plan.secrets_toml) == (text, SECRETS)
    assert any("not replayed" in note for note in plan.notes)
    admin.write_key_files(plan.key_files)
    assert (target / "key.ed25519").read_bytes() == SEED
    assert stat.S_IMODE((target / "key.ed25519").stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "wg0.key").stat().st_mode) == 0o600
    # the restored config reads authorized_keys from the first dir: written here, and said so
    assert CLIENT_KEY in (target / "authorized_keys").read_text()
    assert stat.S_IMODE((target / "authorized_keys").stat().st_mode) == 0o644
    assert any("outside" in note for note in plan.notes)
    # restoring onto the router it came from writes nothing: the files are already there
    assert admin.apply_restore(contents, etc).key_files == []


# ================================================================ reset


def test_reset_keeps_control_whole_and_the_lan() -> None:
    pub, sec = admin.reset_texts(PUBLIC, SECRETS)
    before, after = tomllib.loads(PUBLIC), merged(pub, sec)
    assert after["control"] == before["control"]
    (lan,) = after["networks"]
    assert lan["name"] == "lan" and lan["address"] == "192.168.50.1"
    assert after["firewall"]["zones"] == [
        {"name": "lan", "networks": ["lan"], "default_input": "accept", "default_forward": "drop"}
    ]
    assert after["hostname"] == "oxwrt"
    assert not {"wifi", "services", "wireguard", "port_forwards", "vpn_client"} & set(after)
    assert sec is None  # the kept network has no secrets; wifi/ddns secrets went with them


def test_reset_keeps_a_simple_network_the_control_plane_listens_on() -> None:
    text = PUBLIC.replace(
        'listen = ["192.168.50.1:51820", "[::1]:51820"]', 'listen = ["10.99.0.1:51820"]'
    )
    pub, sec = admin.reset_texts(text, SECRETS)
    names = {n["name"] for n in merged(pub, sec)["networks"]}
    assert names == {"lan", "guest"}


def test_reset_refuses_a_config_without_control() -> None:
    with pytest.raises(ApiError) as err:
        admin.reset_texts('hostname = "x"\n', None)
    assert "[control]" in err.value.message


# ================================================================ through the Runtime


@pytest.fixture
def router(tmp_path: Path) -> Router:
    r = Router(tmp_path)
    r.write(public(), secrets("first passphrase"))
    r.rt.boot()
    return r


def signed_author(request: bytes) -> tuple[Author, bytes]:
    key = SigningKey(bytes(range(32, 64)))
    author = Author(
        name="alice",
        public_key=bytes(key.verify_key),
        request=request,
        signature=key.sign(request).signature,
    )
    return author, bytes(key.verify_key)


def proposed(router: Router) -> list[ConfigProposed]:
    events = (decode(r.tag, r.version, r.payload) for r in router.store.records())
    return [e for e in events if isinstance(e, ConfigProposed)]


def test_set_proposes_a_signed_revision_and_reload_applies_it(router: Router) -> None:
    author, public_key = signed_author(b"set hostname r7")
    out = router.run(router.rt.set("hostname", "r7", author))
    assert out.candidate == 2 and out.running == 1
    rev = router.rt.state.revisions[2]
    assert rev.author == "alice" and rev.base == 1 and rev.comment == "set hostname = r7"
    event = proposed(router)[-1]
    assert event.by is not None and event.by.public_key == public_key
    assert event.by.request == b"set hostname r7"
    router.run(router.rt.reload(author))
    assert router.kernel.hostname == "r7"
    report = verify(router.store)
    assert report.ok and report.signed >= 1
    text = (router.dir / "oxwrt.toml").read_text()
    assert text.startswith("# my router") and 'hostname = "r7"' in text
    assert "first passphrase" in (router.dir / "oxwrt.secrets.toml").read_text()


def test_set_of_a_secret_never_journals_it_in_clear(router: Router) -> None:
    author, _ = signed_author(b"set wifi.home.passphrase brand-new-secret-9")
    router.run(router.rt.set("wifi.home.passphrase", "brand-new-secret-9", author))
    stored = b"".join(r.payload for r in router.store.records())
    assert b"brand-new-secret-9" not in stored
    router.run(router.rt.reload(author))
    assert "brand-new-secret-9" in (router.dir / "oxwrt.secrets.toml").read_text()


def test_get_addresses_what_set_addresses_and_never_reads_a_secret(router: Router) -> None:
    assert router.run(router.rt.get("hostname")) == '"r1"'
    assert router.run(router.rt.get("wifi.home.radio")) == '"phy0"'  # by identity, as set
    assert router.run(router.rt.get("wifi[0].ssid")) == '"home"'
    assert router.run(router.rt.get("radios.phy0.channel")) == "6"
    with pytest.raises(ApiError, match="is a secret: write-only") as err:
        router.run(router.rt.get("wifi.home.passphrase"))
    assert err.value.code == "bad-request"
    for missing in ("nope", "wifi.home.nope", "wifi.guest.ssid"):
        with pytest.raises(ApiError) as err:
            router.run(router.rt.get(missing))
        assert err.value.code == "not-found", missing


def test_set_with_a_bad_key_changes_nothing(router: Router) -> None:
    before = list(router.store.records())
    with pytest.raises(ApiError) as err:
        router.run(router.rt.set("networks.wan.address", "1.2.3.4", OPERATOR))
    assert err.value.code == "not-found"
    assert list(router.store.records()) == before


def test_reset_applies_a_default_that_keeps_the_control_plane(router: Router) -> None:
    before = tomllib.loads(router.rt.state.revisions[1].public_toml)["control"]
    out = router.run(router.rt.reset(OPERATOR))
    assert out.running == 2 and out.candidate is None
    running = tomllib.loads(router.rt.state.revisions[2].public_toml)
    assert running["control"] == before and running["hostname"] == "oxwrt"
    assert router.addrs() == {"192.168.50.1/24"} and router.kernel.hostname == "oxwrt"
    assert router.run(router.rt.status()).hostname == "oxwrt"
    router.run(router.rt.rollback(OPERATOR, to=1))  # a reset is undone like any revision
    assert router.kernel.hostname == "r1"


def test_backup_then_restore_is_a_new_revision_with_the_old_config(router: Router) -> None:
    (router.dir / "authorized_keys").write_text(f"{CLIENT_KEY}\n")
    router.run(
        router.rt.set("control.authorized_keys", str(router.dir / "authorized_keys"), OPERATOR)
    )
    router.run(router.rt.reload(OPERATOR))
    tarball = router.run(router.rt.backup())
    contents = restore.validate(tarball)
    assert contents.journal_export and '"tag": "config.proposed"' in contents.journal_export
    assert "first passphrase" not in contents.journal_export  # sealed: digests only
    router.run(router.rt.set("hostname", "changed", OPERATOR))
    router.run(router.rt.reload(OPERATOR))
    (router.dir / "authorized_keys").unlink()
    out = router.run(router.rt.restore(tarball, OPERATOR))
    assert out.running == 4 and router.kernel.hostname == "r1"
    assert router.rt.state.revisions[4].comment == "restore from backup"
    assert CLIENT_KEY in (router.dir / "authorized_keys").read_text()
    assert any("not replayed" in line for line in out.lines)
    assert "first passphrase" in (router.dir / "oxwrt.secrets.toml").read_text()


def test_restore_of_a_bad_tarball_changes_nothing(router: Router) -> None:
    before = list(router.store.records())
    with pytest.raises(ApiError) as err:
        router.run(router.rt.restore(b"not a tarball", OPERATOR))
    assert err.value.code == "invalid" and "not a gzip file" in err.value.message
    assert list(router.store.records()) == before


def test_reset_and_restore_wait_for_a_pending_confirm(router: Router) -> None:
    tarball = router.run(router.rt.backup())
    router.run(router.rt.set("hostname", "trial", OPERATOR))
    router.run(router.rt.reload(OPERATOR, confirm_within=60))
    before = list(router.store.records())
    for call in (router.rt.reset(OPERATOR), router.rt.restore(tarball, OPERATOR)):
        with pytest.raises(ApiError) as err:
            router.run(call)
        assert "revision 2 is waiting for confirm" in err.value.message
    assert list(router.store.records()) == before
