"""A push that carried its secrets file in clear is journaled without the request bytes:
the author stays attributed, nothing secret is stored, and verify says it cannot re-check it
rather than calling it forged."""

from __future__ import annotations

from journal_samples import pending, signed

from journal.memory import MemoryStore
from journal.verify import verify
from schema.events import ConfigProposed, signature_problem, withheld


def test_withheld_request_is_attributed_but_not_counted_as_verified() -> None:
    full = signed(b"config push with secrets = hunter2")
    stored = ConfigProposed(
        revision=1,
        public_toml='hostname = "r"\n',
        by=full.__class__(
            name=full.name, public_key=full.public_key, request=b"", signature=full.signature
        ),
    )
    assert stored.by is not None and withheld(stored.by)
    assert signature_problem(stored.by) is None
    store = MemoryStore()
    store.append(pending([stored]))
    report = verify(store)
    assert report.ok and report.signed == 0
    assert b"hunter2" not in b"".join(r.payload for r in store.records())


def test_a_stored_request_with_a_wrong_signature_is_still_forged() -> None:
    good = signed(b"reload")
    forged = good.__class__(
        name=good.name, public_key=good.public_key, request=b"rollback", signature=good.signature
    )
    assert not withheld(forged) and signature_problem(forged) is not None
