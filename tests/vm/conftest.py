"""VM-tier fixtures: one QEMU guest per session (boots cost ~15 s under TCG), cabled to two lab
namespaces (WAN and LAN peers). A test that shuts the guest down leaves the next `vm` user a
fresh boot on the same data disk, so scenarios can run in any order."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vm.harness import VM, NetPlan, VMConfig

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == HERE:
            item.add_marker(pytest.mark.vm)


@dataclass
class VMLab:
    """The session's guest and the lab namespaces its NICs are cabled to."""

    workdir: Path
    wan_ns: str
    lan_ns: str
    boots: int = 0
    current: VM | None = field(default=None)

    def config(self) -> VMConfig:
        net = NetPlan(nics={"wan": self.wan_ns, "lan": self.lan_ns})
        return VMConfig(workdir=self.workdir, net=net, data_disk=self.workdir / "data.img")

    def vm(self) -> VM:
        """The running guest, booting one if there is none (first use, or after a shutdown)."""
        if self.current is None or not self.current.alive():
            if self.current is not None:
                self.current.stop()
            self.current = VM(self.config())
            self.current.boot()
            self.boots += 1
        return self.current


@pytest.fixture(scope="session")
def vm_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VMLab]:
    if os.geteuid() != 0:
        pytest.skip("the VM tier needs root (apt, network namespaces, taps)")
    tag = secrets.token_hex(3)
    lab = VMLab(tmp_path_factory.mktemp("vm"), f"oxvmt-wan-{tag}", f"oxvmt-lan-{tag}")
    for ns in (lab.wan_ns, lab.lan_ns):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        yield lab
    finally:
        if lab.current is not None:
            lab.current.stop()
        for ns in (lab.wan_ns, lab.lan_ns):
            subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.fixture
def vm(vm_lab: VMLab) -> VM:
    return vm_lab.vm()
