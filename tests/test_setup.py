"""`edge-agent setup --root DIR`: the whole installation laid out under DIR, idempotent; `warmup` checks its cache."""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.setup.install import agent_command

STATE = Path("var/lib/edge-agent")
CONFIG = Path("etc/edge-agent/config.toml")
UNIT = Path("etc/systemd/system/edge-agent.service")


def edge_agent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    if env is None:  # the cache goes where the command puts it, not where the test session's is
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    return subprocess.run([sys.executable, "-m", "agent.cli.main", *args], capture_output=True, text=True,
                          timeout=600, env=env)


def mode(p: Path) -> int:
    return p.stat().st_mode & 0o7777


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, mode(p)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def laid_out(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("pi")
    return root, edge_agent("setup", "--root", str(root))


def test_setup_lays_out_directories_config_and_unit_with_their_modes(laid_out) -> None:
    root, r = laid_out
    assert r.returncode == 0, r.stdout + r.stderr
    assert mode(root / STATE) == 0o750
    assert mode(root / "etc/edge-agent") == 0o750
    assert mode(root / CONFIG) == 0o640
    assert mode(root / UNIT) == 0o644
    example = Path(__file__).resolve().parents[1] / "config" / "edge-agent.toml"
    assert (root / CONFIG).read_bytes() == example.read_bytes()
    # what it could not do under --root is listed, not done
    assert "useradd --system" in r.stdout and "systemctl daemon-reload" in r.stdout


def test_the_unit_runs_this_installation_with_the_groups_this_system_has(laid_out) -> None:
    root, _ = laid_out
    unit = (root / UNIT).read_text()
    assert f"ExecStart={agent_command()} run --config" in unit
    assert "ExecStartPre=" not in unit  # run validates the config itself (exit 2: not restarted)
    assert "Type=notify" in unit and "Environment=NUMBA_CACHE_DIR=%S/edge-agent/numba-cache" in unit
    assert "#LoadCredential=mqtt-password:" in unit  # ready, commented until a credential file is given
    groups = next(line for line in unit.splitlines() if "SupplementaryGroups" in line)
    present = {g.gr_name for g in grp.getgrall()}
    if groups.startswith("SupplementaryGroups="):
        assert groups.split("=", 1)[1].split() == [g for g in ("dialout", "i2c", "gpio") if g in present]
    else:  # systemd would refuse a group the system lacks: the line is left out
        assert not present & {"dialout", "i2c", "gpio"}


def test_setup_warms_the_kernel_cache_into_the_state_directory_and_runs_check(laid_out) -> None:
    root, r = laid_out
    cache = root / STATE / "numba-cache"
    assert [p for p in cache.rglob("*.nbi")] and [p for p in cache.rglob("*.nbc")]
    assert "config OK: gateway bldg-a-gw1" in r.stdout  # check's own output
    assert "check --config" in r.stdout and "passed" in r.stdout


def test_a_second_setup_changes_nothing_and_says_so(laid_out) -> None:
    root, _ = laid_out
    before = snapshot(root)
    r = edge_agent("setup", "--root", str(root))
    assert r.returncode == 0, r.stdout + r.stderr
    assert snapshot(root) == before
    assert "nothing to change" in r.stdout
    assert not [line for line in r.stdout.splitlines() if line.startswith("+ ")]


def test_a_credential_file_activates_the_credential_line(laid_out) -> None:
    root, _ = laid_out
    secret = root / "etc/edge-agent/mqtt-password"
    secret.write_text("s3cret")
    secret.chmod(0o600)
    r = edge_agent("setup", "--root", str(root), "--credential-file", "/etc/edge-agent/mqtt-password")
    assert r.returncode == 0, r.stdout + r.stderr
    unit = (root / UNIT).read_text()
    assert "\nLoadCredential=mqtt-password:/etc/edge-agent/mqtt-password\n" in unit
    assert "+ updated systemd unit" in r.stdout and "systemctl daemon-reload" in r.stdout
    assert "readable by others" not in r.stdout
    missing = edge_agent("setup", "--root", str(root), "--credential-file", "/etc/edge-agent/nope")
    assert missing.returncode == 1 and "/etc/edge-agent/nope does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_an_invalid_config_is_named_and_setup_exits_2(tmp_path: Path, warmed_kernel_cache) -> None:
    bad = tmp_path / "mine.toml"
    bad.write_text('[gateway]\nid = "gw"\n[mqtt]\nhost = "b"\nport = "many"\n')
    root = tmp_path / "root"
    warmed_kernel_cache(root / STATE / "numba-cache")  # warmed before: the kernels are not this test's subject
    r = edge_agent("setup", "--root", str(root), "--config", str(bad), "--enable")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "mqtt.port" in r.stdout and "run setup again" in r.stdout
    assert "systemctl enable" not in r.stdout  # a service that cannot start is not enabled
    assert (root / CONFIG).read_bytes() == bad.read_bytes()
    assert "Traceback" not in r.stdout + r.stderr


def test_warmup_creates_a_missing_state_directory_and_fills_the_cache(kernel_warmup: Path) -> None:
    # the run's one `edge-agent warmup` (tests/conftest.py) was given a state directory two levels
    # short of existing and exited 0 with the ahead-of-time build ready
    assert kernel_warmup.is_dir() and list((kernel_warmup / "numba-cache").rglob("*.nbi"))
    # and the run-time process's bytecode (python -OO), so a first start compiles nothing either
    assert list((kernel_warmup / "pycache").rglob("app.cpython-*.opt-2.pyc"))


def test_warmup_that_cannot_cache_fails_naming_the_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = edge_agent("warmup", "--state-dir", str(tmp_path / "state"),
                   env={**os.environ, "NUMBA_CACHE_DIR": str(blocker / "cache")})
    assert r.returncode == 1
    assert str(blocker / "cache") in r.stderr and "Traceback" not in r.stderr


def test_warmup_names_why_the_ahead_of_time_build_failed(tmp_path: Path, warmed_kernel_cache) -> None:
    """A venv without setuptools (Python >= 3.12 venvs have none) cannot run numba.pycc: warmup still
    succeeds on the JIT cache and says why there is no ahead-of-time build, not a guess."""
    state = tmp_path / "state"
    cache = warmed_kernel_cache(state / "numba-cache")
    for d in cache.glob("aot-*"):
        shutil.rmtree(d)
    shadow = tmp_path / "no-setuptools"
    shadow.mkdir()
    (shadow / "setuptools.py").write_text('raise ImportError("No module named setuptools")\n')
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    r = edge_agent("warmup", "--state-dir", str(state), env={**env, "PYTHONPATH": str(shadow)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no ahead-of-time build (" in r.stdout and "setuptools" in r.stdout, r.stdout


def test_enable_is_refused_when_the_config_uses_a_credential_the_unit_does_not_load(tmp_path: Path) -> None:
    """The README's step 3 with the annotated example's ${cred:mqtt-password} and no --credential-file:
    the service would exit 2 at once and restart for nothing. Nothing is changed, the exact commands are said."""
    mine = tmp_path / "my-gateway.toml"
    mine.write_text('[gateway]\nid = "gw"\n[mqtt]\nhost = "b"\npassword = "${cred:mqtt-password}"  # ${cred:nope}\n')
    root = tmp_path / "root"
    r = edge_agent("setup", "--root", str(root), "--config", str(mine), "--enable")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "not enabling the service: the config uses ${cred:mqtt-password} and no --credential-file was given" \
        in r.stderr, r.stderr
    assert "sudo sh -c 'umask 077 && cat > /etc/edge-agent/mqtt-password'" in r.stderr
    assert (f"sudo {agent_command()} setup --root {root} --config {mine} --credential-file "
            "/etc/edge-agent/mqtt-password --enable") in r.stderr, r.stderr
    assert "nope" not in r.stderr  # a comment is not a reference
    assert not (root / UNIT).exists() and "Traceback" not in r.stderr
    # a credential loaded under another name than the config uses is refused the same way
    other = edge_agent("setup", "--root", str(root), "--config", str(mine), "--credential-file", "/etc/x",
                       "--credential-name", "broker", "--enable")
    assert other.returncode == 1 and "--credential-file loads ${cred:broker}" in other.stderr, other.stderr


def test_setup_links_the_command_onto_the_path_and_says_who_must_own_what(laid_out) -> None:
    root, r = laid_out
    link = root / "usr/local/bin/edge-agent"
    assert link.is_symlink() and os.readlink(link) == agent_command()
    assert f"linked /usr/local/bin/edge-agent -> {agent_command()}" in r.stdout
    assert "under --root every file is owned by this user" in r.stdout
    assert "~ ownership: chown -R edge-agent:edge-agent /var/lib/edge-agent" in r.stdout
    assert "~ ownership: chown root:edge-agent /etc/edge-agent/config.toml" in r.stdout
    again = edge_agent("setup", "--root", str(root))
    assert "/usr/local/bin/edge-agent -> " in again.stdout and "in place" in again.stdout
