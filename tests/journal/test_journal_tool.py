"""`oxwrtd journal verify|export|stats|replay DIR`, through the real entry point."""

from __future__ import annotations

import json

import pytest
from journal_samples import pending, samples

from journal.lmdb import LmdbStore
from journal.snapshots import take
from oxwrtd.__main__ import main
from oxwrtd.core.state import STATE_VERSION, encode_state
from oxwrtd.journal_tool import load
from schema import events as ev


@pytest.fixture
def journal_dir(tmp_path):
    with LmdbStore(tmp_path) as store:
        store.append(
            pending(
                [
                    ev.ConfigProposed(revision=1, public_toml="a = 1\n"),
                    ev.ConfigApplied(revision=1),
                    *samples()[:-1],  # not the checkpoint: it would replace the state
                ]
            )
        )
    return tmp_path


def test_verify_says_ok_and_exits_0(journal_dir, capsys):
    assert main(["journal", "verify", str(journal_dir)]) == 0
    assert capsys.readouterr().out.startswith("ok: 17 records, seq 1..17, 3 signatures valid")


def test_verify_names_the_first_bad_seq_and_exits_1(journal_dir, capsys):
    data = journal_dir / "data.mdb"
    raw = bytearray(data.read_bytes())
    at = raw.find(b"netlink: EEXIST")
    while at != -1:  # every copy: LMDB may keep a stale page holding it too
        raw[at] ^= 0x20
        at = raw.find(b"netlink: EEXIST", at + 1)
    data.write_bytes(bytes(raw))
    assert main(["journal", "verify", str(journal_dir)]) == 1
    out = capsys.readouterr().out
    assert "BAD at seq 5: record 5: stored bytes fail their checksum (corrupted)" in out
    assert "4 records before it verified" in out
    assert main(["journal", "replay", str(journal_dir)]) == 1
    assert "record 5" in capsys.readouterr().err


def test_verify_of_a_missing_journal_exits_1_naming_it(tmp_path, capsys):
    assert main(["journal", "verify", str(tmp_path)]) == 1
    assert f"{tmp_path}/data.mdb: no journal here" in capsys.readouterr().err


def test_export_writes_json_lines_since_a_seq(journal_dir, capsys):
    assert main(["journal", "export", str(journal_dir), "--since", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["seq"] for line in lines] == list(range(3, 18))
    proposed = lines[0]
    assert proposed["tag"] == "config.proposed"
    leaf = proposed["event"]["sealed_secrets"]["wifi[0].passphrase"]
    assert set(leaf) == {"sealed", "digest"}
    assert proposed["event"]["by"]["name"] == "alice"


def test_stats_count_by_tag_and_show_the_snapshot(journal_dir, capsys):
    with LmdbStore(journal_dir) as store:
        take(store, 10, encode_state(load(store)), STATE_VERSION)
    assert main(["journal", "stats", str(journal_dir)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["records"], doc["head_seq"], doc["snapshot_seq"]) == (17, 17, 10)
    assert doc["by_tag"]["config.applied"] == 2


def test_replay_prints_the_folded_state(journal_dir, capsys):
    assert main(["journal", "replay", str(journal_dir), "--no-snapshot"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["seq"] == 17
    assert doc["services"] == {"dnsmasq": "gave_up"}
    assert doc["leases"] == {"wan": "198.51.100.7/24"}


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["journal", "frobnicate", "/x"])
    assert exit_info.value.code == 2
