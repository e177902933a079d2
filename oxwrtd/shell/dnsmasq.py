"""dnsmasq, the shell half: its rendered config on disk, and (outside supervision) its process.

`write_conf` replaces the file atomically (temp file, fsync, rename) and says whether the text
changed. dnsmasq reads its config file only at start: SIGHUP clears the cache and re-reads hosts
files but keeps the old `dhcp-range`/`server` lines, so a changed config needs a restart. Under
oxwrtd that is the supervisor's restart of the `dnsmasq` service; `Dnsmasq.apply` does the same
for a directly run process (tests, the lab).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from oxwrtd.core.render_dnsmasq import dnsmasq_argv
from oxwrtd.shell.files import stop_group, write_if_changed

READY_TIMEOUT_S = 5.0
READY_POLL_S = 0.02
STOP_GRACE_S = 2.0


class DnsmasqError(RuntimeError):
    pass


def write_conf(path: Path, text: str, mode: int = 0o644) -> bool:
    """Replace `path` with `text` atomically; False (and no write) when it already holds it."""
    return write_if_changed(path, text, mode)


def check_conf(path: Path, binary: str = "/usr/sbin/dnsmasq") -> str | None:
    """dnsmasq's own syntax check: None when it accepts the file, else its complaint."""
    res = subprocess.run(
        [binary, "--test", f"--conf-file={path}"], capture_output=True, text=True, check=False
    )
    return None if res.returncode == 0 else (res.stderr.strip() or f"exit {res.returncode}")


class Dnsmasq:
    """One dnsmasq run directly, optionally behind a command prefix (`ip netns exec NS`).

    The rendered config must name `pid_file`: its appearance is how `start` knows dnsmasq has
    read its config and bound its sockets (dnsmasq writes it after both)."""

    def __init__(
        self,
        conf: Path,
        pid_file: Path,
        *,
        prefix: Sequence[str] = (),
        log: Path | None = None,
        binary: str = "/usr/sbin/dnsmasq",
    ) -> None:
        self.conf = conf
        self.pid_file = pid_file
        self.argv = [*prefix, *dnsmasq_argv(str(conf), binary)]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> int:
        if self.proc is not None and self.proc.poll() is None:
            return self.proc.pid
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        err = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        finally:
            if not isinstance(err, int):
                err.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                raise DnsmasqError(f"dnsmasq exited with {code} at start{self._log_tail()}")
            if self.pid_file.exists() and self.pid_file.read_text().strip():
                return self.proc.pid
            time.sleep(READY_POLL_S)
        self.stop()
        raise DnsmasqError(f"dnsmasq wrote no {self.pid_file} within {READY_TIMEOUT_S}s")

    def reload(self) -> None:
        """SIGHUP: clear the cache, re-read hosts files (not the config; see `apply`)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGHUP)

    def apply(self, text: str) -> bool:
        """Write `text`; restart a running dnsmasq when it changed. True if it changed."""
        changed = write_conf(self.conf, text)
        if changed and self.running():
            self.stop()
            self.start()
        return changed

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, STOP_GRACE_S)

    def _log_tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
        return (": " + " | ".join(tail)) if tail else ""


__all__ = ["Dnsmasq", "DnsmasqError", "check_conf", "write_conf"]
