"""Builds the reference firmware's host targets once per test session (gcc, make); ``node`` starts POSIX
nodes on ptys (``node("--interval", "100")``), killed at the end of the test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from fwb_helpers import PosixNode

FIRMWARE = Path(__file__).parents[2] / "firmware_bridge" / "firmware"


def make(target: str, build: Path) -> Path:
    proc = subprocess.run(["make", "-s", "-C", str(FIRMWARE), target, f"BUILD={build}"],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"make {target} failed:\n{proc.stdout}\n{proc.stderr}")
    return build


@pytest.fixture(scope="session")
def host_build(tmp_path_factory) -> Path:
    if shutil.which("make") is None or shutil.which("cc") is None:
        raise RuntimeError("the firmware tests need make and a C compiler (apt-get install build-essential)")
    return make("host", tmp_path_factory.mktemp("fwb-host"))


@pytest.fixture(scope="session")
def arm_build(tmp_path_factory) -> Path:
    for tool, package in (("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi"),
                          ("qemu-system-arm", "qemu-system-arm")):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: apt-get install {package} (tests/run.sh does)")
    return make("arm", tmp_path_factory.mktemp("fwb-arm"))


@pytest.fixture
def node(host_build, tmp_path):
    nodes: list[PosixNode] = []

    def start(*args: str, link: str = "ttyNODE") -> PosixNode:
        n = PosixNode(host_build / "fwb_node_posix", tmp_path / link, *args).start()
        nodes.append(n)
        return n

    yield start
    for n in nodes:
        n.kill()
