"""The health gate and drift repair of oxwrtd for real in the router namespace: a healthy revision
stays, a revision whose `ping:` target is unreachable reverts by itself, and an nft rule deleted
by hand comes back within drift_check_s with a DriftDetected in the journal export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from oxwrtd.lab import Topology
from oxwrtd.lab_router import DEFAULT_CONFIG, LAN_CLIENT, REPO, LabRouter
from schema.tomledit import set_value

UNREACHABLE = "192.0.2.99"  # TEST-NET-1: nothing in the lab holds it, so no echo ever comes
LAN_PEER = LAN_CLIENT[0].split("/")[0]
INTERVAL_S = 2
DRIFT_CHECK_S = 2


def wait_for(what: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.2)
    return False


def with_health(text: str, probes: list[str], **keys: int) -> str:
    text = set_value(text, ("health", "probes"), probes)
    for key, value in keys.items():
        text = set_value(text, ("health", key), value)
    return text


@pytest.fixture
def router(lab: Topology, tmp_path: Path) -> Iterator[LabRouter]:
    source = tmp_path / "cookbook"
    shutil.copytree(DEFAULT_CONFIG, source)
    public = source / "oxwrt.toml"
    public.write_text(
        with_health(
            public.read_text(),
            ["kernel", "control"],
            window_s=30,
            interval_s=INTERVAL_S,
            failures_to_revert=1,
            drift_check_s=DRIFT_CHECK_S,
        )
    )
    r = LabRouter(lab, source).start()
    lab.add_address("lan", *LAN_CLIENT)
    try:
        yield r
    finally:
        r.stop()


def export(r: LabRouter) -> list[dict[str, Any]]:
    python = REPO / ".venv" / "bin" / "python"
    out = subprocess.run(
        [str(python), "-m", "oxwrtd", "journal", "export", str(r.state / "journal")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def events(r: LabRouter, tag: str) -> list[dict[str, Any]]:
    found = []
    for record in export(r):
        body = record.get("event", record)
        if tag in json.dumps(record):
            found.append(body)
    return found


def running(r: LabRouter) -> int | None:
    status = r.oxctl("lan", "--json", "192.168.50.1", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    value = json.loads(status.stdout)["running_revision"]
    return value if isinstance(value, int) else None


def push_and_reload(r: LabRouter, tmp: Path, text: str) -> None:
    edited = tmp / f"push-{time.monotonic_ns()}.toml"
    edited.write_text(text)
    pushed = r.oxctl("lan", "192.168.50.1", "config-push", str(edited))
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    reloaded = r.oxctl("lan", "192.168.50.1", "reload")
    assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr


def test_a_healthy_revision_stays_and_an_unreachable_ping_target_reverts(
    lab: Topology, router: LabRouter, tmp_path: Path
) -> None:
    base = (router.etc / "oxwrt.toml").read_text()
    healthy = with_health(
        base.replace('hostname = "', 'hostname = "healthy-', 1),
        ["kernel", "control", f"ping:{LAN_PEER}"],
    )
    push_and_reload(router, tmp_path, healthy)
    # two rounds against the real kernel, control plane and a LAN peer: all pass, it stays
    assert wait_for(lambda: len(events(router, "health.probed")) >= 6), router.tail()
    assert running(router) == 2
    assert all(e["ok"] for e in events(router, "health.probed")), events(router, "health.probed")

    broken = with_health(
        base.replace('hostname = "', 'hostname = "doomed-', 1),
        ["kernel", "control", f"ping:{UNREACHABLE}"],
    )
    push_and_reload(router, tmp_path, broken)
    assert wait_for(lambda: bool(events(router, "config.auto_reverted"))), router.tail()
    (revert,) = events(router, "config.auto_reverted")
    assert (revert["from_revision"], revert["to_revision"]) == (3, 2), revert
    assert f"ping:{UNREACHABLE}" in revert["reason"]
    assert running(router) == 2
    assert wait_for(lambda: "healthy-" in (router.etc / "oxwrt.toml").read_text())
    failed = [e for e in events(router, "health.probed") if not e["ok"]]
    assert [e["target"] for e in failed] == [f"ping:{UNREACHABLE}"], failed


def _input_rules(lab: Topology) -> list[tuple[int, str]]:
    listing = lab.run("router", "nft", "-a", "list", "chain", "inet", "oxwrt", "input").stdout
    return [
        (int(m.group(2)), m.group(1).strip())
        for m in re.finditer(r"^\s+(.+?) # handle (\d+)$", listing, re.MULTILINE)
    ]


def test_an_nft_rule_deleted_by_hand_is_detected_repaired_and_journaled(
    lab: Topology, router: LabRouter
) -> None:
    # the WAN lease re-applies the revision (new WAN address, new ruleset): let it settle, then
    # let one check record the ruleset as applied
    assert wait_for(lambda: "WAN wan0: lease" in router.tail(200)), router.tail()
    time.sleep(DRIFT_CHECK_S + 1)
    assert events(router, "daemon.drift_detected") == []
    handle, rule = _input_rules(lab)[-1]
    lab.run("router", "nft", "delete", "rule", "inet", "oxwrt", "input", "handle", str(handle))
    assert rule not in [r for _, r in _input_rules(lab)]
    assert wait_for(lambda: rule in [r for _, r in _input_rules(lab)], 4 * DRIFT_CHECK_S), (
        router.tail()
    )
    drift = events(router, "daemon.drift_detected")
    assert drift and drift[0]["kind"] == "firewall", drift
    assert "repaired" in drift[0]["detail"]
    assert running(router) == 1
