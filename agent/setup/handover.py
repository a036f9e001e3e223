"""What setup makes sure of for the technician who runs the service next: a service that can start
(every ``${cred:NAME}`` the config uses is loaded by the unit), ``edge-agent`` on the PATH root's
shells and sudo see, and the ownership a ``--root`` layout still needs."""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

from .steps import Owner, Report, SetupError

LINK = Path("/usr/local/bin/edge-agent")  # on sudo's secure_path and every login PATH
_CRED = re.compile(r"\$\{cred:([A-Za-z_][A-Za-z0-9_.-]*)")


def credentials_used(text: str) -> list[str]:
    """The ``${cred:NAME}`` names in the config's values (comments do not count), in order."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []  # check names the problem

    def strings(node: Any):
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for v in node.values():
                yield from strings(v)
        elif isinstance(node, list):
            for v in node:
                yield from strings(v)
    return list(dict.fromkeys(name for s in strings(data) for name in _CRED.findall(s)))


def refuse_unloaded_credentials(text: str, *, credential_file: Path | None, credential_name: str, enable: bool,
                                config_source: Path | None, root: Path | None, command: str,
                                config_dir: Path) -> list[str]:
    """The credentials the config uses that the unit will not load. With ``enable`` that is a
    SetupError saying exactly what to run: the service would exit 2 at once, and restart for nothing."""
    missing = [n for n in credentials_used(text) if credential_file is None or n != credential_name]
    if not missing or not enable:
        return missing
    name = missing[0]
    secret = credential_file or config_dir / name
    argv = ["sudo", command, "setup"]
    argv += ["--root", str(root)] if root else []
    argv += ["--config", str(config_source)] if config_source else []
    argv += ["--credential-file", str(secret)] + (["--credential-name", name] if name != "mqtt-password" else [])
    argv += ["--enable"]
    more = f" (it also uses {', '.join(missing[1:])}: setup loads one credential; give the others as ${{VAR}})" \
        if len(missing) > 1 else ""
    given = (f"--credential-file loads ${{cred:{credential_name}}}" if credential_file is not None
             else "no --credential-file was given")
    raise SetupError(
        f"not enabling the service: the config uses ${{cred:{name}}}{more} and {given}, so the service would exit "
        f"at once (exit 2) and systemd would keep restarting it. Write the secret to a root-only file, then run "
        f"setup with it:\n"
        f"    sudo sh -c 'umask 077 && cat > {secret}'    (type the secret, Enter, Ctrl-D)\n"
        f"    {shlex.join(argv)}")


def ensure_command_link(report: Report, at: Path, command: str) -> None:
    """``/usr/local/bin/edge-agent`` -> this installation's script, so ``edge-agent status`` works in any
    shell and under sudo. A file there that is not a link is someone else's: left alone, with a word."""
    target = Path(command)
    if not target.is_absolute() or " " in command:
        report.warning(f"edge-agent is run as `{command}` here; no link made in {LINK.parent}")
        return
    if target == LINK:
        report.ok(f"{LINK} is this installation's command")
        return
    try:
        if at.is_symlink():
            if Path(os.readlink(at)) == target:
                report.ok(f"{LINK} -> {target} in place")
                return
            at.unlink()
        elif at.exists():
            report.warning(f"{at} exists and is not a link: left as it is; this installation's command is {target}")
            return
        at.parent.mkdir(parents=True, exist_ok=True)
        at.symlink_to(target)
    except OSError as e:
        raise SetupError(f"cannot link {at} to {target}: {e.strerror}") from None
    report.changed(f"linked {LINK} -> {target} (edge-agent is on the PATH, sudo's too)")


def ownership_note(report: Report, owners: list[tuple[Path, Owner, bool]], root: Path) -> list[str]:
    """Under ``--root`` nothing can be given to a user this system may not have: say what is owned by
    whom now and list the chown commands to run inside the target system. Returns those commands."""
    uid, gid = os.getuid(), os.getgid()
    commands = [f"chown {'-R ' if recursive else ''}{o.user}:{o.group} /{path.relative_to(root)}"
                for path, o, recursive in owners]
    report.warning(f"under --root every file is owned by this user ({uid}:{gid}), not by the service user: the "
                   f"service cannot write its state directory until ownership is set inside the target system")
    for c in commands:
        report.planned(f"ownership: {c}")
    return commands

