"""oxctl set / backup / restore / reset against oxwrtd running on the cookbook in the router
namespace, from the LAN client namespace over real QUIC.

oxwrtd runs in its own UTS namespace, so the hostname is read back through the control plane
(`oxctl get hostname`, `oxctl status`), never from the namespace."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from oxwrtd.control import restore
from oxwrtd.lab import Topology
from oxwrtd.lab_router import LAN_CLIENT, LabRouter

ROUTER_IP = "192.168.50.1"


@pytest.fixture
def router(lab: Topology) -> Iterator[LabRouter]:
    r = LabRouter(lab).start()
    lab.add_address("lan", *LAN_CLIENT)
    try:
        yield r
    finally:
        r.stop()


def oxctl(router: LabRouter, *args: str) -> str:
    done = router.oxctl("lan", ROUTER_IP, *args)
    assert done.returncode == 0, f"oxctl {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def status(router: LabRouter) -> dict[str, object]:
    done = router.oxctl("lan", "--json", ROUTER_IP, "status")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def hostname(router: LabRouter) -> str:
    return json.loads(oxctl(router, "get", "hostname"))  # type: ignore[no-any-return]


def test_set_then_reload_renames_the_router_and_keeps_the_cookbook_comments(
    router: LabRouter,
) -> None:
    assert hostname(router) == "homelab-gw"
    oxctl(router, "set", "hostname", "lab-set")
    assert status(router)["candidate_revision"] == 2
    oxctl(router, "reload")
    assert hostname(router) == "lab-set" and status(router)["hostname"] == "lab-set"
    text = (router.etc / "oxwrt.toml").read_text()
    assert 'hostname = "lab-set"' in text and "#  oxwrt cookbook" in text
    bad = router.oxctl("lan", ROUTER_IP, "set", "networks.nope.address", "10.0.0.1")
    assert bad.returncode != 0 and "no entry of networks has name" in bad.stdout + bad.stderr


def test_backup_to_a_file_then_restore_it_is_a_round_trip(
    router: LabRouter, tmp_path: Path
) -> None:
    backup = tmp_path / "router.tar.gz"
    with backup.open("wb") as out:
        done = subprocess.run(
            router.oxctl_argv("lan", ROUTER_IP, "backup"),
            stdout=out,
            stderr=subprocess.PIPE,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    contents = restore.validate(backup.read_bytes())
    assert contents.server_seed == (router.etc / "key.ed25519").read_bytes()
    assert router.operator_public in (contents.authorized_keys or "")
    with tarfile.open(fileobj=io.BytesIO(backup.read_bytes()), mode="r:gz") as tar:
        assert not [m.name for m in tar if "vpn" in m.name]

    oxctl(router, "set", "hostname", "drifted")
    oxctl(router, "reload")
    assert hostname(router) == "drifted"
    out = oxctl(router, "restore", str(backup), "--confirm")
    assert "not replayed" in out
    state = status(router)
    assert state["hostname"] == "homelab-gw" and state["running_revision"] == 3


def test_reset_keeps_the_operator_able_to_manage_the_router(router: LabRouter) -> None:
    oxctl(router, "reset", "--confirm")
    state = status(router)
    assert state["hostname"] == "oxwrt" and state["running_revision"] == 2
    assert "[control]" in (router.etc / "oxwrt.toml").read_text()
    oxctl(router, "rollback", "--confirm", "--to", "1")
    assert hostname(router) == "homelab-gw"
