"""The Debian package's packing step and maintainer scripts (packaging/): a package packed from a
stand-in venv is read back with dpkg-deb, and postinst runs against a stand-in ``edge-agent``. The
real build and install (a venv built in the target userland, apt install, upgrade, purge) is
packaging/check-deb.sh: minutes, not collected by pytest."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from agent.setup.install import TEMPLATE_EXE, shipped

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
SCRIPTS = ("postinst", "prerm", "postrm")

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb (Debian's dpkg) is not installed")


def pack(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PACKAGING / "pack-deb.sh"), *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "TMPDIR": str(tmp_path),
                               "EDGE_DEB_COMPRESS": "gzip"})


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("deb")
    venv_bin = tmp / "tree/opt/edge-agent/bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "edge-agent").write_text("#!/bin/sh\necho edge-agent 0.1.0\n")
    (venv_bin / "edge-agent").chmod(0o755)
    p = pack(tmp, str(tmp / "tree"), "armhf", "3.11", "0.1.0-1+deb12", str(tmp / "out"), "python3-numpy (>= 1:1.24)")
    assert p.returncode == 0, p.stderr
    out = Path(p.stdout.strip())
    assert out == tmp / "out/edge-agent_0.1.0-1+deb12_armhf.deb"
    return out


def dpkg_deb(*args: str) -> str:
    return subprocess.run(["dpkg-deb", *args], capture_output=True, text=True, check=True).stdout


def test_control_pins_the_python_the_venv_was_built_for(deb: Path) -> None:
    fields = {k: dpkg_deb("-f", str(deb), k) .strip() for k in ("Package", "Version", "Architecture", "Depends")}
    assert fields["Package"] == "edge-agent"
    assert fields["Version"] == "0.1.0-1+deb12"
    assert fields["Architecture"] == "armhf"
    # the venv's compiled wheels fit one CPython minor version: exactly that one
    assert fields["Depends"] == "python3 (>= 3.11), python3 (<< 3.12), ca-certificates, passwd, python3-numpy (>= 1:1.24)"
    assert int(dpkg_deb("-f", str(deb), "Installed-Size")) > 0


def test_contents_command_on_path_config_as_conffile(deb: Path) -> None:
    listing = dpkg_deb("-c", str(deb))
    rows = {line.split()[5]: line for line in listing.splitlines()}
    assert rows["./usr/bin/edge-agent"].split()[-1] == TEMPLATE_EXE
    assert rows["./etc/edge-agent/config.toml"].startswith("-rw-r----- root/root")
    assert rows["./etc/edge-agent/"].startswith("drwxr-x--- root/root")
    assert rows["./opt/edge-agent/bin/edge-agent"].startswith("-rwxr-xr-x root/root")
    # the unit's Documentation= points at the README
    assert "./usr/share/doc/edge-agent/README.md" in rows
    assert "./usr/share/doc/edge-agent/copyright" in rows
    info = dpkg_deb("-I", str(deb))
    for script in SCRIPTS:
        assert f" {script} " in info or f" {script}\n" in info
    extracted = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True, check=True).stdout
    assert b"conffiles" in extracted


def test_the_packed_config_is_the_one_setup_ships(deb: Path, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    assert (tmp_path / "etc/edge-agent/config.toml").read_bytes() == shipped("config.toml")
    ctrl = tmp_path / "DEBIAN"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(ctrl)], check=True)
    assert (ctrl / "conffiles").read_text() == "/etc/edge-agent/config.toml\n"
    for script in SCRIPTS:
        assert (ctrl / script).stat().st_mode & stat.S_IXUSR


def test_the_unit_runs_the_packaged_command() -> None:
    unit = (ROOT / "systemd/edge-agent.service").read_text()
    assert f"ExecStart={TEMPLATE_EXE} run" in unit


@pytest.mark.parametrize("script", [*(f"debian/{s}" for s in SCRIPTS), "lib.sh", "userland.sh", "pack-deb.sh",
                                    "build-deb.sh", "check-deb.sh"])
def test_scripts_parse(script: str) -> None:
    shell = "sh" if script.startswith("debian/") else "bash"  # maintainer scripts are POSIX sh (dash)
    p = subprocess.run([shell, "-n", str(PACKAGING / script)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_the_shared_userland_library_defines_functions_only_and_copies_the_checkout(tmp_path: Path) -> None:
    """packaging/userland.sh is sourced by the package scripts and both Pi checks (tests/pi): a variable
    it set would clash with theirs (ROOT, WORK, CACHE ...)."""
    script = f"""
    before=$(compgen -v | sort)
    . "{PACKAGING / 'userland.sh'}"
    comm -13 <(echo "$before") <(compgen -v | sort) | grep -v -x -e before -e PIPESTATUS
    userland_tarball /cache trixie armhf && userland_packages armhf && userland_packages arm64
    userland_copy_checkout "{ROOT}" "{tmp_path / 'copy'}"
    """
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert p.stdout.splitlines() == ["/cache/trixie-armhf-base-v2.tar",
                                     "python3,python3-venv,ca-certificates,sudo,python3-numpy",
                                     "python3,python3-venv,ca-certificates,sudo"], p.stdout + p.stderr
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse"], capture_output=True).returncode == 0:
        assert (tmp_path / "copy/packaging/userland.sh").read_bytes() == (PACKAGING / "userland.sh").read_bytes()
        assert (tmp_path / "copy/agent/cli/main.py").is_file()


def test_pack_refuses_a_tree_without_the_venv(tmp_path: Path) -> None:
    p = pack(tmp_path, str(tmp_path / "nothing"), "amd64", "3.11", "0.1.0-1", str(tmp_path / "out"))
    assert p.returncode == 2
    assert f"no {tmp_path / 'nothing'}/opt/edge-agent/bin/edge-agent" in p.stderr
    assert not (tmp_path / "out").exists()


def postinst_with(tmp_path: Path, agent_exit: int) -> subprocess.CompletedProcess:
    """The real postinst, with its ``edge-agent`` and restart flag pointed into tmp_path."""
    agent = tmp_path / "edge-agent"
    agent.write_text(f"#!/bin/sh\necho \"$*\" >>{tmp_path}/calls\nexit {agent_exit}\n")
    agent.chmod(0o755)
    text = (PACKAGING / "debian/postinst").read_text()
    text = text.replace("AGENT=/opt/edge-agent/bin/edge-agent", f"AGENT={agent}")
    text = text.replace("RESTART_FLAG=/run/edge-agent.dpkg-restart", f"RESTART_FLAG={tmp_path}/restart")
    text = text.replace("[ -d /run/systemd/system ]", f"[ -d {tmp_path}/no-systemd ]")
    script = tmp_path / "postinst"
    script.write_text(text)
    return subprocess.run(["sh", str(script), "configure", ""], capture_output=True, text=True)


def test_postinst_runs_setup_and_a_config_to_edit_does_not_fail_the_install(tmp_path: Path) -> None:
    p = postinst_with(tmp_path, 2)  # setup's exit 2: the config does not pass check
    assert p.returncode == 0
    assert (tmp_path / "calls").read_text() == "setup\n"
    assert "/etc/edge-agent/config.toml does not pass 'edge-agent check' yet" in p.stderr
    assert "sudo edge-agent setup --enable" in p.stdout


def test_postinst_fails_when_setup_fails(tmp_path: Path) -> None:
    p = postinst_with(tmp_path, 1)
    assert p.returncode == 1
    assert "'edge-agent setup' failed (exit 1)" in p.stderr
