"""Events for the journal tests: one fully populated sample per type, and a hypothesis stream."""

from __future__ import annotations

from hypothesis import strategies as st
from nacl.signing import SigningKey

from journal.record import Pending
from schema import events as ev
from schema.codec import encode
from schema.seal import seal

DEVICE_KEY = bytes(range(32))
AUTHOR_KEY = SigningKey(bytes(range(100, 132)))
NONCE = bytes(24)


def signed(request: bytes, name: str = "alice", key: SigningKey = AUTHOR_KEY) -> ev.Signed:
    return ev.Signed(
        name=name,
        public_key=bytes(key.verify_key),
        request=request,
        signature=key.sign(request).signature,
    )


def samples() -> list[ev.Event]:
    """One event per type with every field set (golden bytes are made from these)."""
    return [
        ev.ConfigProposed(
            revision=7,
            base_revision=6,
            public_toml='[[wifi]]\nssid = "home"\n',
            sealed_secrets={"wifi[0].passphrase": seal(DEVICE_KEY, "hunter22", NONCE)},
            comment="new ssid",
            source="rpc",
            by=signed(b"push revision 7"),
        ),
        ev.ConfigApplied(revision=7),
        ev.ApplyFailed(revision=8, reason="netlink: EEXIST", step="addr"),
        ev.AutoReverted(from_revision=8, to_revision=7, reason="confirm window expired"),
        ev.RolledBack(from_revision=7, to_revision=5, comment="back", by=signed(b"rollback 5")),
        ev.ConfirmRequested(revision=7, deadline=1_700_000_060.5),
        ev.Confirmed(revision=7, by=signed(b"confirm 7")),
        ev.ConfirmExpired(revision=8),
        ev.ServiceStarted(name="dnsmasq", pid=1234, generation=3),
        ev.ServiceExited(name="dnsmasq", pid=1234, code=1, signal=9),
        ev.ServiceGaveUp(name="dnsmasq", restarts=5, reason="crash loop"),
        ev.HealthProbed(target="wan", ok=False, latency_ms=12.5, detail="timeout"),
        ev.LeaseAcquired(
            interface="wan",
            address="198.51.100.7/24",
            gateway="198.51.100.1",
            dns=["198.51.100.53"],
            expires=1_700_003_600.0,
        ),
        ev.Booted(software="oxwrtd 0.1.0", boot_id="b-1"),
        ev.DriftDetected(kind="route", detail="default route missing"),
        ev.Checkpoint(
            upto=100,
            bridge=bytes(range(32)),
            dropped=90,
            dropped_by_tag={"health.probed": 90},
            state=b"\x80",
            state_version=1,
        ),
    ]


small = st.integers(min_value=1, max_value=6)
names = st.sampled_from(["dnsmasq", "hostapd", "chrony"])

# Chatter and config events with small ids, so streams revisit the same revisions and services;
# fold is total, so incoherent sequences (applying an unknown revision) are part of the point.
events = st.one_of(
    st.builds(
        lambda r, b, t: ev.ConfigProposed(revision=r, base_revision=b, public_toml=t),
        small,
        st.none() | small,
        st.sampled_from(["a = 1\n", "a = 2\nb = 3\n", ""]),
    ),
    st.builds(lambda r: ev.ConfigApplied(revision=r), small),
    st.builds(lambda r: ev.ApplyFailed(revision=r, reason="x"), small),
    st.builds(
        lambda a, b: ev.AutoReverted(from_revision=a, to_revision=b, reason="x"), small, small
    ),
    st.builds(lambda a, b: ev.RolledBack(from_revision=a, to_revision=b), small, small),
    st.builds(lambda r, d: ev.ConfirmRequested(revision=r, deadline=d), small, st.floats(0, 1e6)),
    st.builds(lambda r: ev.Confirmed(revision=r), small),
    st.builds(lambda r: ev.ConfirmExpired(revision=r), small),
    st.builds(lambda n, p: ev.ServiceStarted(name=n, pid=p), names, small),
    st.builds(lambda n, p: ev.ServiceExited(name=n, pid=p, code=1), names, small),
    st.builds(lambda n: ev.ServiceGaveUp(name=n, restarts=3), names),
    st.builds(lambda n: ev.ServiceRemoved(name=n), names),
    st.builds(lambda ok: ev.HealthProbed(target="wan", ok=ok), st.booleans()),
    st.builds(lambda a: ev.LeaseAcquired(interface="wan", address=f"10.0.0.{a}"), small),
    st.builds(lambda: ev.Booted(software="t")),
    st.builds(lambda: ev.DriftDetected(kind="route")),
)


def pending(events: list[ev.Event], t0: float = 1_700_000_000.0) -> list[Pending]:
    """Records to append for `events`, one second apart."""
    out = []
    for i, e in enumerate(events):
        tag, version, payload = encode(e)
        out.append(Pending(t0 + i, tag, version, payload))
    return out
