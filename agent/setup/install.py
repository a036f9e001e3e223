"""The setup steps in order; each one looks before it acts, so a second run changes nothing."""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .handover import LINK, ensure_command_link, ownership_note, refuse_unloaded_credentials
from .steps import Owner, Report, SetupError, ensure_dir, ensure_file
from .system import DEVICE_GROUPS, device_groups, ensure_user, systemctl

SERVICE = "edge-agent"  # user, group, unit and directory name; the unit's StateDirectory= is this
STATE_DIR = Path("/var/lib/edge-agent")
CONFIG_DIR = Path("/etc/edge-agent")
UNIT_PATH = Path("/etc/systemd/system/edge-agent.service")
CACHE_SUBDIR = "numba-cache"
TEMPLATE_EXE = "/opt/edge-agent/bin/edge-agent"  # the command path written in the shipped unit
EXIT_CHECK_FAILED = 2


@dataclass(frozen=True)
class SetupOptions:
    root: Path | None = None  # every path under this directory; no user database, no systemctl
    config_source: Path | None = None  # a config to install (else the example, when none is there)
    credential_file: Path | None = None  # makes the unit's LoadCredential= line active
    credential_name: str = "mqtt-password"
    enable: bool = False  # systemctl enable --now once everything passed

    @property
    def dry(self) -> bool:
        return self.root is not None

    def at(self, path: Path) -> Path:
        """Where a system path lives for this run."""
        return path if self.root is None else self.root / path.relative_to("/")


def shipped(name: str) -> bytes:
    return importlib.resources.files("agent.setup").joinpath("files", name).read_bytes()


def agent_command() -> str:
    """The ``edge-agent`` of this installation (the venv's own script), for the unit's Exec lines."""
    script = Path(sys.executable).parent / "edge-agent"
    if script.exists():
        return str(script)
    return shutil.which("edge-agent") or f"{sys.executable} -m agent.cli.main"


def render_unit(template: str, *, command: str, groups: list[str], credential: tuple[str, Path] | None) -> str:
    """The shipped unit with this installation's command, the device groups that exist, and the
    credential line active when a credential file is given."""
    out = []
    for line in template.replace(TEMPLATE_EXE, command).splitlines():
        if line.startswith("SupplementaryGroups="):
            # systemd refuses to start a unit naming a group the system lacks
            line = (f"SupplementaryGroups={' '.join(groups)}" if groups
                    else f"# SupplementaryGroups=: none of {', '.join(DEVICE_GROUPS)} exists on this system")
        elif line.startswith("#LoadCredential=") and credential is not None:
            line = f"LoadCredential={credential[0]}:{credential[1]}"
        out.append(line)
    return "\n".join(out) + "\n"


def cache_files(cache: Path) -> int:
    return sum(1 for p in cache.rglob("*") if p.suffix in (".nbi", ".nbc")) if cache.is_dir() else 0


def jit_expected() -> bool:
    """Whether kernels compile here (numba installed, JIT not disabled): then the cache must fill."""
    return importlib.util.find_spec("numba") is not None and os.environ.get("NUMBA_DISABLE_JIT", "0") in ("", "0")


def as_service_user(opts: SetupOptions) -> dict:
    """subprocess arguments that drop to the service user (nothing under --root)."""
    if opts.dry:
        return {}
    return {"user": SERVICE, "group": SERVICE, "extra_groups": device_groups()}


def _agent(args: list[str], opts: SetupOptions, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli.main", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, **as_service_user(opts))


def warm_cache(report: Report, opts: SetupOptions, owner: Owner) -> None:
    """Compile the kernels into the state directory's cache as the service user, and verify it filled."""
    state = opts.at(STATE_DIR)
    cache = state / CACHE_SUBDIR
    ensure_dir(report, cache, 0o750, owner, "kernel cache")
    before = cache_files(cache)
    if jit_expected():
        report.add("progress", "compiling (or loading) the processing kernels: minutes on a Pi the first time...")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "HOME": str(state)}
    p = _agent(["warmup", "--state-dir", str(state)], opts, env, state)
    if p.returncode != 0:
        raise SetupError(f"warming the kernel cache in {cache} failed (exit {p.returncode}): "
                         f"{(p.stderr or p.stdout).strip()}")
    after = cache_files(cache)
    if jit_expected() and after == 0:
        raise SetupError(f"the kernel cache {cache} is still empty after warmup: the service would compile every "
                         f"kernel at each start (warmup said: {p.stdout.strip() or p.stderr.strip()})")
    if not jit_expected():
        report.ok("kernels run on numpy (numba not installed): no cache needed")
    elif after != before:
        report.changed(f"kernel cache {cache} warmed: {after} file(s) ({p.stdout.strip()})")
    else:
        report.ok(f"kernel cache {cache} warm: {after} file(s)")


def install_config(report: Report, opts: SetupOptions, owner: Owner) -> Path:
    target = opts.at(CONFIG_DIR / "config.toml")
    if opts.config_source is None:
        ensure_file(report, target, shipped("config.toml"), 0o640, owner, "config (the annotated example)", replace=False)
        return target
    try:
        content = opts.config_source.read_bytes()
    except OSError as e:
        raise SetupError(f"--config: cannot read {opts.config_source}: {e.strerror}") from None
    if target.exists() and target.read_bytes() != content:
        backup = target.with_name("config.toml.bak")
        shutil.copy2(target, backup)
        report.changed(f"previous config saved as {backup}")
    ensure_file(report, target, content, 0o640, owner, f"config (from {opts.config_source})")
    return target


def state_dir_warning(report: Report, config: Path) -> None:
    try:
        data = tomllib.loads(config.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return  # check names the problem
    state = data.get("gateway", {}).get("state_dir")
    if state is not None and Path(state) != STATE_DIR:
        report.warning(f"{config}: gateway.state_dir is {state}, but the unit's state directory (and kernel cache) "
                       f"is {STATE_DIR}: the service may not be able to write there")


def credential(report: Report, opts: SetupOptions) -> tuple[str, Path] | None:
    if opts.credential_file is None:
        return None
    path = opts.credential_file.absolute()
    here = opts.at(path)
    if not here.is_file():
        raise SetupError(f"--credential-file: {here} does not exist (write the secret there first, mode 0600)")
    if here.stat().st_mode & 0o077:
        report.warning(f"{here} is readable by others than its owner: chmod 0600 it")
    return opts.credential_name, path


def run_check(report: Report, opts: SetupOptions, config: Path) -> bool:
    p = _agent(["check", "--config", str(config)], opts, dict(os.environ), opts.at(CONFIG_DIR))
    for line in (p.stdout + p.stderr).splitlines():
        report.add("check", line)
    if p.returncode != 0:
        report.warning(f"`edge-agent check` found problems in {config} (exit {p.returncode}): fix them and run setup again")
        return False
    report.ok(f"edge-agent check --config {config}: passed")
    return True


def config_text(opts: SetupOptions) -> str:
    """The config the service will run: the one given, else the one installed, else the example."""
    installed = opts.at(CONFIG_DIR / "config.toml")
    try:
        if opts.config_source is not None:
            return opts.config_source.read_text(encoding="utf-8")
        if installed.exists():
            return installed.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""  # install_config and check name the problem
    return shipped("config.toml").decode()


def missing_credentials(opts: SetupOptions) -> list[str]:
    """``${cred:NAME}`` the unit will not load; SetupError (saying what to run) with ``--enable``."""
    return refuse_unloaded_credentials(
        config_text(opts), credential_file=opts.credential_file, credential_name=opts.credential_name,
        enable=opts.enable, config_source=opts.config_source, root=opts.root, command=agent_command(),
        config_dir=CONFIG_DIR)


def setup(opts: SetupOptions, report: Report) -> bool:
    """Every step in order, told to ``report``; returns whether the config check passed."""
    if not opts.dry and os.geteuid() != 0:
        raise SetupError("setup changes the system: run it as root (sudo), or with --root DIR to lay it out under DIR")
    missing_credentials(opts)  # before anything changes: a service that cannot start is not enabled
    ensure_user(report, SERVICE, str(STATE_DIR), dry=opts.dry)
    real = not opts.dry
    svc, cfg_owner, root = Owner(SERVICE, SERVICE, real), Owner("root", SERVICE, real), Owner("root", "root", real)
    ensure_dir(report, opts.at(STATE_DIR), 0o750, svc, "state directory")
    ensure_dir(report, opts.at(CONFIG_DIR), 0o750, cfg_owner, "config directory")
    config = install_config(report, opts, cfg_owner)
    state_dir_warning(report, config)
    unit = render_unit(shipped("edge-agent.service").decode(), command=agent_command(), groups=device_groups(),
                       credential=credential(report, opts))
    unit_path = opts.at(UNIT_PATH)
    if not unit_path.parent.is_dir():  # a system directory: created when missing (--root), never re-moded
        ensure_dir(report, unit_path.parent, 0o755, root, "unit directory")
    if ensure_file(report, unit_path, unit.encode(), 0o644, root, "systemd unit"):
        systemctl(report, "daemon-reload", dry=opts.dry, why="systemd reads the new unit", required=False)
    warm_cache(report, opts, svc)
    ensure_command_link(report, opts.at(LINK), agent_command())
    if opts.dry:
        ownership_note(report, [(opts.at(STATE_DIR), svc, True), (opts.at(CONFIG_DIR), cfg_owner, False),
                                (config, cfg_owner, False)], opts.root)
    passed = run_check(report, opts, config)
    if passed and opts.enable:
        systemctl(report, "enable", "--now", SERVICE, dry=opts.dry, why="service enabled and started")
    return passed


def next_steps(opts: SetupOptions, passed: bool) -> list[str]:
    cfg = CONFIG_DIR / "config.toml"
    steps = [f"edit {cfg} (every key: docs/config-reference.md), then run `edge-agent setup` again"] if not passed else []
    missing = missing_credentials(opts) if not opts.enable else []
    if missing:
        steps.append(f"before enabling: the config uses ${{cred:{missing[0]}}}: write the secret to a root-only file "
                     f"(sudo sh -c 'umask 077 && cat > {CONFIG_DIR / missing[0]}') and rerun setup with "
                     f"--credential-file {CONFIG_DIR / missing[0]}")
    elif opts.credential_file is None:
        steps.append(f"secrets: write one to a root-only file and rerun setup with --credential-file FILE; "
                     f"the config names it ${{cred:{opts.credential_name}}}")
    if passed and not opts.enable:
        steps.append(f"start it: systemctl enable --now {SERVICE}   (or rerun setup with --enable)")
    steps.append(f"watch it: journalctl -u {SERVICE} -f   and   edge-agent status --config {cfg}")
    return steps
