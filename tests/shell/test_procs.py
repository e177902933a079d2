"""The /proc and pidfd adapter, on real processes of this test."""

from __future__ import annotations

import subprocess
import sys
import time

from oxwrtd.shell.procs import boot_time, kill_matching, started_at


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_start_time_of_a_new_process_is_now_and_of_a_missing_one_none():
    before = time.time()
    proc = sleeper()
    try:
        start = started_at(proc.pid)
        assert start is not None
        assert before - 1.5 <= start <= time.time() + 1.5  # btime is whole seconds
        assert boot_time() < start
    finally:
        proc.kill()
        proc.wait()
    assert started_at(proc.pid) is None  # reaped: gone


def test_kill_matching_kills_only_what_still_matches_and_waits_for_it():
    mine, spared = sleeper(), sleeper()
    try:
        killed = kill_matching([mine.pid, spared.pid, 999_999_999], lambda p: p == mine.pid)
        assert killed == [mine.pid]
        assert mine.wait(5) == -9
        assert spared.poll() is None
    finally:
        for proc in (mine, spared):
            proc.kill()
            proc.wait()
