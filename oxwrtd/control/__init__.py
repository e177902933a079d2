"""The control plane's server side: who may connect, how fast, and the shielded QUIC server.

identity.py   the server key file and its self-signed certificate
acl.py        allowed client keys ([[control.clients]] ∪ authorized_keys) and where to listen
mac.py        the pre-handshake trailer check on Initial datagrams (sans-IO)
ratelimit.py  per-key token buckets and the connection cap (sans-IO)
server.py     ControlServer: aioquic behind the check, one RPC per stream, signed mutations

Nothing is imported here, so `oxwrtd --print-server-key` can load identity.py without aioquic.
"""
