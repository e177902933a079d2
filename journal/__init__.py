"""The append-only journal: records and bytes, a store interface, two backends, verification.

`journal.lmdb.LmdbStore` is imported from its module (it pulls in lmdb); everything else that
callers need is re-exported here.
"""

from journal.memory import MemoryStore
from journal.record import JournalError, Pending, Record
from journal.retention import Compaction, compact
from journal.scan import checked_facts
from journal.snapshots import boot, due, take
from journal.store import Snapshot, Stats, Store
from journal.verify import Report, verify

__all__ = [
    "Compaction",
    "JournalError",
    "MemoryStore",
    "Pending",
    "Record",
    "Report",
    "Snapshot",
    "Stats",
    "Store",
    "boot",
    "checked_facts",
    "compact",
    "due",
    "take",
    "verify",
]
