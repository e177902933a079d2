"""The supervisor's cgroup v2 limits in force, on a kernel with the memory, cpu and pids
controllers (the lab host has them on cgroup v1 only, where the supervisor reports them as
unenforced). One guest-side run of supervisor_scenarios.py drives the real Supervisor through
every scenario; each test below asserts on one part of the JSON it prints."""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest

from tests.vm.conftest import VMLab
from tests.vm.supervisor_scenarios import (
    FORKER_PIDS_MAX,
    HOG_MEMORY_MAX,
    LIMITED,
    RESULT_PREFIX,
    SPINNER_CPU_MAX,
)
from vm.harness import GUEST_PYTHON, REPO

pytestmark = pytest.mark.vm
GUEST_TIMEOUT_S = 240.0  # about 20 s under TCG here; a loaded CI runner is several times slower


@pytest.fixture(scope="module")
def result(vm_lab: VMLab) -> dict[str, Any]:
    vm = vm_lab.vm()
    cmd = f"cd {REPO} && {GUEST_PYTHON} -m tests.vm.supervisor_scenarios 2>&1"
    rc, out = vm.run(cmd, timeout=GUEST_TIMEOUT_S)
    lines = [line for line in out.splitlines() if line.startswith(RESULT_PREFIX)]
    assert rc == 0 and lines, f"the guest script failed ({rc}):\n{out}"
    found: dict[str, Any] = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
    assert found["error"] is None, f"{found['error']}\nevents: {found.get('events')}"
    return found


def test_limits_read_back_exactly_and_none_is_unenforced(result: dict[str, Any]) -> None:
    limited = result["limited"]
    assert limited["in_cgroup"]  # the service's PID is the leaf's only member
    assert (limited["memory.max"], limited["cpu.max"], limited["pids.max"]) == (
        str(LIMITED["memory_max"]),
        LIMITED["cpu_max"],
        str(LIMITED["pids_max"]),
    )
    assert result["unenforced"] == {"limited": [], "forker": [], "hog": []}
    assert result["limits_unsupported_events"] == []


def test_a_fork_bomb_stops_at_pids_max(result: dict[str, Any]) -> None:
    forker = result["forker"]
    assert forker["pids.max"] == str(FORKER_PIDS_MAX)
    report = forker["report"]
    # the service itself is one of the pids.max tasks; a not-yet-reaped launcher may be another
    assert FORKER_PIDS_MAX - 2 <= report["forked"] <= FORKER_PIDS_MAX - 1
    assert set(report["failures"]) == {"EAGAIN"}  # every refused fork(2) failed with EAGAIN
    assert forker["samples"] > 1 and forker["max_pids_current"] <= FORKER_PIDS_MAX
    if forker["pids.peak"] is not None:
        assert int(forker["pids.peak"]) <= FORKER_PIDS_MAX
    assert forker["pids.events"]["max"] >= report["failures"]["EAGAIN"]


def test_a_memory_hog_is_oom_killed_and_restarted_after_backoff(result: dict[str, Any]) -> None:
    hog = result["hog"]
    assert hog["memory.max"] == str(HOG_MEMORY_MAX)
    assert hog["memory.events"]["oom_kill"] >= 1
    assert hog["first_exit"] == {"code": None, "signal": signal.SIGKILL}
    assert hog["first_exit_pid_was_first_start"]
    assert hog["restart_delay_s"] >= hog["backoff_initial_s"]
    if hog["memory.peak"] is not None:
        assert int(hog["memory.peak"]) <= HOG_MEMORY_MAX
    # it got somewhere before the kill, but never past the limit
    (last,) = hog["last_log"]
    assert 8 <= int(last.split()[1]) < HOG_MEMORY_MAX >> 20


def test_removing_services_removes_their_cgroups(result: dict[str, Any]) -> None:
    removed = result["removed"]
    assert removed["cgroup_gone"] == {"forker": True, "hog": True}
    assert removed["leaves_left"] == ["limited", "spinner"]
    assert removed["limited_kept_pid"]
    assert result["base_removed"]  # the script cleaned up after itself


def test_cpu_max_holds_a_busy_loop_near_its_quota(result: dict[str, Any]) -> None:
    spinner = result["spinner"]
    assert spinner["cpu.max"] == SPINNER_CPU_MAX
    quota, period = (int(x) for x in SPINNER_CPU_MAX.split())
    # unthrottled it would take the guest's one CPU (share ~1.0); allow scheduling slack on top
    # of the 10 % quota, far below what an unenforced limit gives
    assert spinner["share"] <= 3 * quota / period, spinner
    assert spinner["periods"] >= 5 and spinner["throttled"] >= spinner["periods"] // 2, spinner
