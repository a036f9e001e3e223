"""The service user, its groups and systemctl: run for real, or listed when under ``--root``."""

from __future__ import annotations

import grp
import pwd
import shutil
import subprocess

from .steps import Report, SetupError

DEVICE_GROUPS = ("dialout", "i2c", "gpio")  # serial ports, I2C buses, GPIO chips on Raspberry Pi OS


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def device_groups() -> list[str]:
    """The device groups this system has (a generic Debian has dialout, but no i2c or gpio)."""
    return [g for g in DEVICE_GROUPS if group_exists(g)]


def _run(argv: list[str]) -> None:
    if shutil.which(argv[0]) is None:
        raise SetupError(f"{argv[0]} not found: cannot run {' '.join(argv)}")
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        raise SetupError(f"{' '.join(argv)} failed (exit {p.returncode}): {p.stderr.strip() or p.stdout.strip()}")


def ensure_user(report: Report, user: str, home: str, *, dry: bool) -> None:
    """A system group and user named ``user``, member of the device groups that exist."""
    ops: list[tuple[str, list[str]]] = []
    if not group_exists(user):
        ops.append((f"system group {user}", ["groupadd", "--system", user]))
    if not user_exists(user):
        ops.append((f"system user {user}", ["useradd", "--system", "--gid", user, "--home-dir", home,
                                            "--no-create-home", "--shell", "/usr/sbin/nologin", user]))
        member_of: set[str] = set()
    else:
        member_of = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
    missing = [g for g in device_groups() if g not in member_of]
    if missing:
        ops.append((f"{user} in group(s) {', '.join(missing)}", ["usermod", "--append", "--groups", ",".join(missing), user]))
    if not ops:
        report.ok(f"system user {user} exists, in group(s) {', '.join(device_groups()) or '(none of ' + ', '.join(DEVICE_GROUPS) + ')'}")
        return
    for what, argv in ops:
        if dry:
            report.planned(f"{what}: {' '.join(argv)}")
        else:
            _run(argv)
            report.changed(f"created {what}" if argv[0] != "usermod" else f"added {what}")


def systemctl(report: Report, *args: str, dry: bool, why: str, required: bool = True) -> None:
    """Run systemctl; when not ``required``, a system without a running systemd (an image being
    built in a chroot) only gets a warning."""
    argv = ["systemctl", *args]
    if dry:
        report.planned(f"{why}: {' '.join(argv)}")
        return
    try:
        _run(argv)
    except SetupError as e:
        if required:
            raise
        report.warning(f"{e} (run it once systemd is up)")
        return
    report.changed(f"{why}: {' '.join(argv)}")
