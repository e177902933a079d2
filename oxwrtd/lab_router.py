"""oxwrtd running for real inside a lab Topology: the README's run command and the lab tests.

`LabRouter` copies a config pair into the lab's work dir, points the control plane's
authorized_keys at a file it writes there with a fresh operator key, starts
`oxwrtd --config-dir --state-dir` in the router namespace (with its own hostname namespace, so
it never renames this machine) and waits for the ready line. `python -m oxwrtd.lab_router`
brings the embedded default config up and prints how to reach it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from oxwrtd.lab import Topology

REPO: Final = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG: Final = REPO / "rootfs-overlay" / "etc" / "oxwrt"
READY_LINE: Final = "oxwrtd ready"
LAN_CLIENT: Final = ("192.168.50.10/24", "192.168.50.1")  # matches the cookbook's LAN


class LabRouterError(RuntimeError):
    pass


class LabRouter:
    def __init__(self, topo: Topology, config_dir: Path = DEFAULT_CONFIG) -> None:
        self.topo = topo
        self.etc = topo.workdir / "etc"
        self.state = topo.workdir / "state"
        self.operator_key = topo.workdir / "operator.key"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = topo.workdir / "oxwrtd.log"
        self._install(config_dir)

    def _install(self, source: Path) -> None:
        from clients.keys import keygen
        from schema.tomledit import set_value

        self.etc.mkdir(parents=True, exist_ok=True)
        public = (source / "oxwrt.toml").read_text()
        secrets = source / "oxwrt.secrets.toml"
        if not secrets.exists():
            secrets = source / "oxwrt.secrets.toml.example"
        if secrets.exists():
            target = self.etc / "oxwrt.secrets.toml"
            shutil.copyfile(secrets, target)
            target.chmod(0o600)
        self.operator_public = keygen(self.operator_key)
        keys = self.etc / "authorized_keys"
        keys.write_text(f"{self.operator_public}  # lab operator\n")
        public = set_value(public, ("control", "authorized_keys"), str(keys))
        (self.etc / "oxwrt.toml").write_text(public)

    def start(self, timeout: float = 30.0) -> LabRouter:
        python = REPO / ".venv" / "bin" / "python"
        argv = [str(python if python.exists() else sys.executable), "-m", "oxwrtd"]
        argv += ["--config-dir", str(self.etc), "--state-dir", str(self.state)]
        seen = self.log.stat().st_size if self.log.exists() else 0  # a restart appends
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.topo.command("router", *argv, own_uts=True),
                stdout=out,
                stderr=out,
                start_new_session=True,
                cwd=REPO,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self.log.read_bytes()[seen:].decode(errors="replace"):
                return self
            if self.proc.poll() is not None:
                raise LabRouterError(f"oxwrtd exited ({self.proc.returncode}):\n{self.tail()}")
            time.sleep(0.1)
        raise LabRouterError(f"oxwrtd not ready after {timeout:g} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def server_key(self) -> str:
        from oxwrtd.control.identity import key_path, load

        return load(key_path(self.etc)).public_hex

    def oxctl_argv(self, role: str, *args: str) -> list[str]:
        """The command line of oxctl run from a client namespace with the operator's key."""
        python = REPO / ".venv" / "bin" / "python"
        argv = [str(python if python.exists() else sys.executable), "-m", "clients.oxctl"]
        argv += ["--key", str(self.operator_key), "--server-key", self.server_key(), *args]
        return self.topo.command(role, *argv)

    def oxctl(self, role: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run oxctl from a client namespace against the router and wait for it."""
        return subprocess.run(
            self.oxctl_argv(role, *args), capture_output=True, text=True, check=False
        )

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m oxwrtd.lab_router",
        description="Run oxwrtd in a namespace lab on a config dir (the embedded default).",
    )
    p.add_argument("--config-dir", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--seconds", type=float, default=0, help="stop after N seconds (0: Ctrl-C)")
    args = p.parse_args(argv)
    with Topology("oxrun") as topo:  # entering builds it, leaving removes it all
        router = LabRouter(topo, args.config_dir).start()
        topo.add_address("lan", *LAN_CLIENT)
        lan = topo.ns["lan"]
        print(router.tail(8))
        print(f"\noxwrt is running in namespace {topo.router} (log: {router.log}).")
        print("Reach it from the LAN client namespace:")
        print(
            f"  ip netns exec {lan} {REPO}/.venv/bin/oxctl --key {router.operator_key} "
            f"--server-key {router.server_key()} 192.168.50.1 status"
        )
        print(f"  ip netns exec {topo.router} nft list ruleset")
        print("Edit the config and send SIGHUP, or push with oxctl. Ctrl-C stops and cleans up.")
        sys.stdout.flush()
        try:
            if args.seconds:
                time.sleep(args.seconds)
            else:
                signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            router.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
