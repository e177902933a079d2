"""Which journaled PIDs are still the services an earlier daemon started."""

from __future__ import annotations

from oxwrtd.core.leftovers import STARTED_AFTER_RECORD_S, STARTED_BEFORE_RECORD_S, left_running
from oxwrtd.core.state import ServiceRow

T = 1_800_000_000.0


def row(pid: int | None, state: str = "running", since: float = T) -> ServiceRow:
    return ServiceRow(name="x", state=state, pid=pid, since=since)  # type: ignore[arg-type]


def test_a_pid_counts_only_while_its_process_started_just_before_the_record():
    rows = {"dns": row(10), "ntp": row(11), "app": row(12), "old": row(13), "late": row(14)}
    live = {
        10: T - 0.3,  # forked, set up, then journaled: ours
        11: T - STARTED_BEFORE_RECORD_S + 1,  # a slow machine: still ours
        12: T - STARTED_BEFORE_RECORD_S - 1,  # started long before: a reused PID
        14: T + STARTED_AFTER_RECORD_S + 1,  # started after the record: a reused PID
    }  # 13: no such process any more
    assert left_running(rows, live.get) == [("dns", 10), ("ntp", 11)]


def test_only_running_rows_with_a_real_pid_are_candidates():
    rows = {
        "exited": row(None, "exited"),
        "gave_up": row(None, "gave_up"),
        "stale": row(20, "exited"),
        "init": row(1),
    }
    assert left_running(rows, lambda pid: T) == []


def test_a_wall_clock_stepped_since_the_record_matches_nothing():
    """NTP setting the clock at boot shifts /proc's boot time: leaving the process alone is the
    safe way to be wrong."""
    assert left_running({"dns": row(10, since=T - 3600)}, lambda pid: T) == []
