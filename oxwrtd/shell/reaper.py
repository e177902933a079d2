"""The one owner of `waitpid` in the daemon.

Every exit of a child, direct or re-parented (the daemon is PID 1 or a child subreaper), is reaped
here by a `waitpid(-1, WNOHANG)` sweep on SIGCHLD, so no zombie outlives the next sweep. Statuses
go to one callback; a status for a PID nobody has claimed yet is kept (bounded) so a caller that
learns a PID late still gets its exit. Nothing else in the daemon may call wait*().
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
from collections import OrderedDict
from collections.abc import Callable

import msgspec

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
UNCLAIMED_KEPT = 256  # exits of PIDs not (yet) claimed; old ones are true orphans and dropped


class ExitStatus(msgspec.Struct, frozen=True):
    """Exactly one of `code` and `signal` is set."""

    pid: int
    code: int | None
    signal: int | None


def decode_status(pid: int, status: int) -> ExitStatus:
    if os.WIFSIGNALED(status):
        return ExitStatus(pid=pid, code=None, signal=os.WTERMSIG(status))
    return ExitStatus(pid=pid, code=os.WEXITSTATUS(status), signal=None)


def become_subreaper() -> None:
    """Make orphaned descendants re-parent to this process (PID 1 gets them anyway)."""
    if os.getpid() == 1:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"PR_SET_CHILD_SUBREAPER: {os.strerror(err)}")


class Reaper:
    """Reaps every child of this process. `on_exit` sees every status and returns whether the PID
    was one it knew; unknown ones are kept for a later `claim`/`wait_for`."""

    def __init__(self, on_exit: Callable[[ExitStatus], bool] | None = None) -> None:
        self._on_exit = on_exit
        self._waiters: dict[int, asyncio.Future[ExitStatus]] = {}
        self._unclaimed: OrderedDict[int, ExitStatus] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        become_subreaper()
        self._loop = asyncio.get_running_loop()
        self._loop.add_signal_handler(signal.SIGCHLD, self.sweep)
        self.sweep()  # children that exited before the handler existed

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGCHLD)
            self._loop = None

    def set_on_exit(self, on_exit: Callable[[ExitStatus], bool]) -> None:
        self._on_exit = on_exit

    def wait_for(self, pid: int) -> asyncio.Future[ExitStatus]:
        """A future for `pid`'s exit; resolved at once if it was already reaped."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ExitStatus] = loop.create_future()
        status = self._unclaimed.pop(pid, None)
        if status is not None:
            future.set_result(status)
        else:
            self._waiters[pid] = future
        return future

    async def run(
        self, argv: list[str], *, env: dict[str, str] | None = None
    ) -> tuple[ExitStatus, bytes]:
        """Run a helper command to completion, stdout and stderr captured together. Other
        adapters use this instead of subprocess.run, whose own wait would race this reaper."""
        loop = asyncio.get_running_loop()
        out_r, out_w = os.pipe()
        try:
            actions = [
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, out_w, 2),
            ]
            pid = os.posix_spawnp(argv[0], argv, env or dict(os.environ), file_actions=actions)
        except OSError:
            os.close(out_r)
            raise
        finally:
            os.close(out_w)
        exited = self.wait_for(pid)
        with os.fdopen(out_r, "rb") as pipe:
            output = await loop.run_in_executor(None, pipe.read)
        return await exited, output

    def claim(self, pid: int) -> ExitStatus | None:
        """The exit status of `pid` if it was reaped before anyone asked for it."""
        return self._unclaimed.pop(pid, None)

    def sweep(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._deliver(decode_status(pid, status))

    def _deliver(self, status: ExitStatus) -> None:
        waiter = self._waiters.pop(status.pid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(status)
        claimed = waiter is not None
        if self._on_exit is not None:
            claimed = self._on_exit(status) or claimed
        if not claimed:
            self._unclaimed[status.pid] = status
            while len(self._unclaimed) > UNCLAIMED_KEPT:
                self._unclaimed.popitem(last=False)
