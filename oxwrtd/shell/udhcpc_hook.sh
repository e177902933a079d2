#!/bin/sh
# udhcpc runs this on every lease event ($1: deconfig, bound, renew, leasefail, nak). oxwrtd
# applies the lease itself, so this only reports it: dhcp_hook.py (stdlib only, run by path with
# -I -S so no site or PYTHONPATH is involved) sends one datagram to $OXWRT_DHCP_SOCKET.
exec "${OXWRT_PYTHON:-/usr/bin/python3}" -I -S "${0%/*}/dhcp_hook.py" "$@"
