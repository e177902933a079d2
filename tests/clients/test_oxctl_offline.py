"""oxctl offline commands: `check` and `dump-config` on files under tmp_path (pure tier)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from clients.oxctl import main
from schema.load import load_pair
from schema.secrets import REDACTED

PSK = base64.b64encode(bytes([7] * 32)).decode()
PUBKEY = base64.b64encode(bytes(range(32))).decode()

PUBLIC = f"""\
hostname = "router"

[[networks]]
name = "wan"
type = "wan"
iface = "eth1"
mode = "pppoe"
username = "isp-user"

[[networks]]
name = "lan"
type = "lan"
bridge = "br-lan"
address = "192.168.50.1"
prefix = 24

[[radios]]
phy = "phy0"
band = "2g"
channel = 6

[[wifi]]
radio = "phy0"
ssid = "home"
network = "lan"
passphrase = "inline-Secret-wifi"

[[wireguard]]
name = "wg0"
listen_port = 51821

[[wireguard.peers]]
name = "laptop"
pubkey = "{PUBKEY}"
allowed_ips = "10.8.0.2/32"

[[ddns]]
name = "cf"
provider = "cloudflare"
zone_id = "z"
record_id = "r"
domain = "home.example"

[[ddns]]
name = "nc"
provider = "namecheap"
host = "@"
domain = "home.example"

[[ddns]]
name = "he"
provider = "he"
hostname = "home.example"

[control]
listen = ["[::1]:51820"]
"""

SECRETS = f"""\
[[networks]]
name = "wan"
password = "pppoe-Secret-pw"

[[wireguard]]
name = "wg0"

[[wireguard.peers]]
name = "laptop"
preshared_key = "{PSK}"

[[ddns]]
name = "cf"
api_token = "cf-Secret-token"

[[ddns]]
name = "nc"
password = "nc-Secret-password"

[[ddns]]
name = "he"
key = "he-Secret-key"
"""

SECRET_STRINGS = (
    "inline-Secret-wifi",
    "pppoe-Secret-pw",
    PSK,
    "cf-Secret-token",
    "nc-Secret-password",
    "he-Secret-key",
)


@pytest.fixture
def public(tmp_path: Path) -> Path:
    path = tmp_path / "oxwrt.toml"
    path.write_text(PUBLIC)
    secrets = tmp_path / "oxwrt.secrets.toml"
    secrets.write_text(SECRETS)
    secrets.chmod(0o600)
    return path


@pytest.fixture(autouse=True)
def no_ambient_overlay(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OXWRT_SECRET__"):
            monkeypatch.delenv(name)


# ---------------------------------------------------------------- check


def test_check_valid_pair_prints_nothing(public: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(public)]) == 0
    assert capsys.readouterr() == ("", "")


def test_check_prints_every_issue_with_file_line_and_path(
    public: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public.write_text(PUBLIC.replace("listen_port = 51821", "listen_port = 70000"))
    (public.parent / "oxwrt.secrets.toml").write_text(
        SECRETS + '\n[[wifi]]\nssid = "hme"\npassphrase = "orphan-Secret"\n'
    )
    assert main(["check", str(public)]) == 1
    out = capsys.readouterr().out.splitlines()
    port_line = PUBLIC.splitlines().index("listen_port = 51821") + 1
    orphan_line = SECRETS.count("\n") + 2
    secrets_path = public.parent / "oxwrt.secrets.toml"
    assert any(
        line.startswith(f'{public}:{port_line}: wireguard[0] (name "wg0").listen_port: ')
        for line in out
    ), out
    assert any(
        line.startswith(f'{secrets_path}:{orphan_line}: wifi[0] (ssid "hme"): ') for line in out
    ), out
    assert len(out) == 2


def test_check_json(public: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (public.parent / "oxwrt.secrets.toml").chmod(0o644)
    assert main(["check", "--json", str(public)]) == 1
    [issue] = json.loads(capsys.readouterr().out)
    assert set(issue) == {"path", "line", "message", "file"}
    assert issue["file"] == str(public.parent / "oxwrt.secrets.toml")
    assert "0644" in issue["message"]
    (public.parent / "oxwrt.secrets.toml").chmod(0o600)
    assert main(["check", "--json", str(public)]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_check_malformed_toml_reports_line_and_column(
    public: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public.write_text('hostname = "router"\nprefix = = 24\n')
    assert main(["check", str(public)]) == 1
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{public}:2: (top level): malformed TOML: ")
    assert "line 2, column" in line


def test_check_with_explicit_secrets_and_env_overlay(
    public: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    moved = tmp_path / "other.secrets.toml"
    (tmp_path / "oxwrt.secrets.toml").rename(moved)
    assert main(["check", "--secrets", str(moved), str(public)]) == 0
    monkeypatch.setenv("OXWRT_SECRET__radios__phy0__channel", "six")
    assert main(["check", "--secrets", str(moved), str(public)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("environment: OXWRT_SECRET__radios__phy0__channel: ")
    assert "takes an integer" in out


# ---------------------------------------------------------------- dump-config


def test_dump_config_reveals_no_secret(
    public: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OXWRT_SECRET__ddns__cf__api_token", "env-Secret-token")
    monkeypatch.setenv("OXWRT_SECRET__radios__phy0__channel", "11")
    assert main(["dump-config", str(public)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    for secret in (*SECRET_STRINGS, "env-Secret-token"):
        assert secret not in out
    lines = out.splitlines()
    assert lines[1] == f"# public:  {public}"
    assert lines[2] == f"# secrets: {public.parent / 'oxwrt.secrets.toml'} (present)"
    assert lines[3] == "# redacted leaves: 6"
    dumped = tomllib.loads(out)
    assert dumped["radios"][0]["channel"] == 11  # the caller's environment, like the daemon
    assert dumped["ddns"][0]["api_token"] == REDACTED
    assert dumped["wireguard"][0]["peers"][0]["preshared_key"] == REDACTED
    assert dumped["networks"][0]["password"] == REDACTED
    assert dumped["wifi"][0]["passphrase"] == REDACTED
    expected = load_pair(public).raw
    expected["radios"][0]["channel"] = 11
    assert {
        k: v for k, v in dumped.items() if k not in ("wifi", "ddns", "networks", "wireguard")
    } == {k: v for k, v in expected.items() if k not in ("wifi", "ddns", "networks", "wireguard")}


def test_dump_config_without_secrets_file(public: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (public.parent / "oxwrt.secrets.toml").unlink()
    assert main(["dump-config", str(public)]) == 0
    out, err = capsys.readouterr()
    assert "(NOT present)" in out
    assert "# redacted leaves: 1" in out
    assert "inline-Secret-wifi" not in out
    assert "password" in err  # the pppoe WAN now lacks its password: reported, still dumped


def test_dump_config_of_unparsable_file(public: Path, capsys: pytest.CaptureFixture[str]) -> None:
    public.write_text("hostname = \n")
    assert main(["dump-config", str(public)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "malformed TOML" in err


# ---------------------------------------------------------------- usage


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required"),
        (["check"], "FILE"),
        (["check", "--bogus", "x"], "unrecognized arguments"),
        (["frobnicate"], "invalid choice"),
        (["check", "/nonexistent/oxwrt.toml"], "/nonexistent/oxwrt.toml: no such file"),
        (["dump-config", "--secrets", "/nonexistent/s.toml", "x.toml"], "does not exist"),
    ],
)
def test_usage_errors_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_help_exits_0_without_loading_the_schema() -> None:
    probe = (
        "import sys, contextlib, io\n"
        "from clients.oxctl import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = main(['--help'])\n"
        "heavy = ('schema', 'tomlkit', 'msgspec')\n"
        "print(code, sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "0 []"


def test_a_reader_that_leaves_early_ends_oxctl_quietly(tmp_path: Path) -> None:
    """`oxctl dump-config ... | head` must not end in a BrokenPipeError traceback."""
    public = tmp_path / "oxwrt.toml"
    public.write_text(PUBLIC)
    repo = Path(__file__).resolve().parents[2]
    with subprocess.Popen(
        [sys.executable, "-m", "clients.oxctl", "dump-config", str(public)],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before oxctl writes its first byte
        err = proc.stderr.read().decode()
        assert proc.wait(30) == 141, err
    assert "Traceback" not in err, err
