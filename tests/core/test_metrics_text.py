"""Prometheus text: figures derived from the state, HELP/TYPE per family, escaping, stable order."""

from __future__ import annotations

import re

import pytest

from oxwrtd.core import blocklist_parse as bp
from oxwrtd.core.metrics_text import FAMILIES, escape_label_value, render, snapshot
from oxwrtd.core.state import (
    Lease,
    PendingConfirm,
    Probe,
    Revision,
    RevisionStatus,
    ServiceRow,
    State,
)


def revision(rid: int, status: RevisionStatus) -> Revision:
    return Revision(
        id=rid,
        base=None,
        public_toml="",
        proposed_seq=rid,
        proposed_at=0.0,
        status=status,
    )


def sample_state() -> State:
    return State(
        seq=42,
        running=3,
        candidate=4,
        boots=2,
        drift=5,
        pending_confirm=PendingConfirm(revision=4, deadline=1.0, requested_at=0.0),
        revisions={
            1: revision(1, "applied"),
            2: revision(2, "failed"),
            3: revision(3, "applied"),
            4: revision(4, "reverted"),
            5: revision(5, "proposed"),
        },
        services={
            "dns": ServiceRow(name="dns", state="running", pid=9, starts=3, exits=2, since=0.0),
            "ntp": ServiceRow(name="ntp", state="gave_up", starts=1, exits=1, since=0.0),
        },
        leases={
            "wan0": Lease(interface="wan0", address="203.0.113.2/24", at=900.0, expires=1600.0)
        },
        probes={"1.1.1.1": Probe(target="1.1.1.1", ok=True, at=0.0)},
    )


def parse(text: str) -> dict[str, float]:
    """`name{labels}` -> value for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def test_figures_come_from_the_state() -> None:
    blocklist = bp.succeeded(
        bp.new_list("spam", "http://x", 60, now=0.0), 700.0, bp.parse_body(b"192.0.2.1\nbad\n")
    )
    text = render(snapshot(sample_state(), now=1000.0, started=400.0, blocklists=[blocklist]))
    got = parse(text)
    assert got["oxwrt_uptime_seconds"] == 600
    assert got["oxwrt_journal_seq"] == 42
    assert got["oxwrt_revision_running"] == 3
    assert got["oxwrt_revision_candidate"] == 4
    assert got["oxwrt_confirm_pending"] == 1
    assert got["oxwrt_boots_total"] == 2
    assert got["oxwrt_drift_corrections_total"] == 5
    assert got['oxwrt_revisions{outcome="applied"}'] == 2
    assert got['oxwrt_revisions{outcome="failed"}'] == 1
    assert got['oxwrt_revisions{outcome="reverted"}'] == 1
    assert got['oxwrt_service_state{service="dns",state="running"}'] == 1
    assert got['oxwrt_service_state{service="dns",state="exited"}'] == 0
    assert got['oxwrt_service_state{service="ntp",state="gave_up"}'] == 1
    assert got['oxwrt_service_restarts_total{service="dns"}'] == 2
    assert got['oxwrt_service_exits_total{service="dns"}'] == 2
    assert got['oxwrt_lease_info{interface="wan0",address="203.0.113.2/24"}'] == 1
    assert got['oxwrt_lease_expiry_seconds{interface="wan0"}'] == 600
    assert got['oxwrt_lease_acquired_timestamp_seconds{interface="wan0"}'] == 900
    assert got['oxwrt_probe_ok{target="1.1.1.1"}'] == 1
    assert got['oxwrt_blocklist_entries{list="spam"}'] == 1
    assert got['oxwrt_blocklist_rejected_lines{list="spam"}'] == 1
    assert got['oxwrt_blocklist_fetches_total{list="spam"}'] == 1
    assert got['oxwrt_blocklist_fetch_failures_total{list="spam"}'] == 0
    assert got['oxwrt_blocklist_last_success_timestamp_seconds{list="spam"}'] == 700


def test_a_fresh_router_reports_zeroes_and_no_lists() -> None:
    got = parse(render(snapshot(State(), now=5.0, started=5.0)))
    assert got["oxwrt_revision_running"] == 0
    assert got["oxwrt_confirm_pending"] == 0
    assert not any(k.startswith("oxwrt_blocklist_entries{") for k in got)


def test_a_list_never_fetched_has_no_last_success_sample() -> None:
    never = bp.failed(bp.new_list("b", "http://x", 60, now=0.0), 1.0, "refused")
    got = parse(render(snapshot(State(), now=5.0, started=0.0, blocklists=[never])))
    assert got['oxwrt_blocklist_entries{list="b"}'] == 0
    assert got['oxwrt_blocklist_fetch_failures_total{list="b"}'] == 1
    assert 'oxwrt_blocklist_last_success_timestamp_seconds{list="b"}' not in got


def test_every_family_has_help_then_type_then_its_samples() -> None:
    text = render(snapshot(sample_state(), now=1000.0, started=400.0))
    seen: list[str] = []
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            current = line.split()[2]
            seen.append(current)
            continue
        if line.startswith("# TYPE "):
            assert line.split()[2] == current
            assert line.split()[3] in {"gauge", "counter"}
            continue
        assert re.match(rf"{current}(\{{.*\}})? \S+$", line), line
    assert seen == [name for name in FAMILIES if name in seen]  # table order
    assert len(seen) == len(set(seen))


def test_family_names_are_prometheus_names() -> None:
    for name in FAMILIES:
        assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name)


def test_output_is_stable_whatever_the_insertion_order() -> None:
    a = render({"oxwrt_probe_ok": {(("target", "b"),): 1, (("target", "a"),): 0}})
    b = render({"oxwrt_probe_ok": {(("target", "a"),): 0, (("target", "b"),): 1}})
    assert a == b
    assert a.index('target="a"') < a.index('target="b"')


def test_label_values_are_escaped() -> None:
    evil = 'a"b\\c\nd'
    text = render({"oxwrt_probe_ok": {(("target", evil),): 1}})
    assert 'oxwrt_probe_ok{target="a\\"b\\\\c\\nd"} 1\n' in text
    assert escape_label_value(evil) == 'a\\"b\\\\c\\nd'
    assert len(text.splitlines()) == 3  # HELP, TYPE, one sample: no forged line


def test_numbers_render_as_prometheus_expects() -> None:
    text = render(
        {
            "oxwrt_uptime_seconds": 1.5,
            "oxwrt_journal_seq": 10**16,
            "oxwrt_lease_expiry_seconds": {
                (("interface", "a"),): float("inf"),
                (("interface", "b"),): float("-inf"),
                (("interface", "c"),): float("nan"),
                (("interface", "d"),): 3.0,
            },
        }
    )
    assert "oxwrt_uptime_seconds 1.5\n" in text
    assert "oxwrt_journal_seq 10000000000000000\n" in text
    assert 'interface="a"} +Inf' in text
    assert 'interface="b"} -Inf' in text
    assert 'interface="c"} NaN' in text
    assert 'interface="d"} 3\n' in text


def test_unknown_families_and_bad_label_names_are_bugs() -> None:
    with pytest.raises(ValueError, match="unknown families: oxwrt_nope"):
        render({"oxwrt_nope": 1})
    with pytest.raises(ValueError, match="label name 'bad-name'"):
        render({"oxwrt_probe_ok": {(("bad-name", "x"),): 1}})
    with pytest.raises(TypeError):
        render({"oxwrt_confirm_pending": True})


def test_an_empty_snapshot_renders_nothing() -> None:
    assert render({}) == ""
