"""What setup did, step by step, and the file operations it is built from (each changes only what differs)."""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class SetupError(Exception):
    """A step that cannot be done; the message names what and where."""


@dataclass
class Report:
    """One line per step: ``changed`` (done now), ``ok`` (already so), ``planned`` (left to the system
    under ``--root``), ``warning``."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    echo: Callable[[str, str], None] | None = None  # shows each line as it happens (a compile takes minutes)

    def add(self, kind: str, text: str) -> None:
        self.lines.append((kind, text))
        if self.echo is not None:
            self.echo(kind, text)

    def changed(self, text: str) -> None:
        self.add("changed", text)

    def ok(self, text: str) -> None:
        self.add("ok", text)

    def planned(self, text: str) -> None:
        self.add("planned", text)

    def warning(self, text: str) -> None:
        self.add("warning", text)

    @property
    def any_changed(self) -> bool:
        return any(kind == "changed" for kind, _ in self.lines)


@dataclass(frozen=True)
class Owner:
    """Intended owner of a path; applied only when ``apply`` (running as root outside ``--root``)."""

    user: str
    group: str
    apply: bool

    def ids(self) -> tuple[int, int]:
        try:
            return pwd.getpwnam(self.user).pw_uid, grp.getgrnam(self.group).gr_gid
        except KeyError as e:
            raise SetupError(f"no such user or group: {e.args[0]}") from None


def _fix_owner_mode(path: Path, mode: int, owner: Owner) -> list[str]:
    """Set mode and (when applied) owner; returns what was changed."""
    fixes = []
    st = path.stat()
    if st.st_mode & 0o7777 != mode:
        path.chmod(mode)
        fixes.append(f"mode {mode:04o}")
    if owner.apply:
        uid, gid = owner.ids()
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(path, uid, gid)
            fixes.append(f"owner {owner.user}:{owner.group}")
    return fixes


def ensure_dir(report: Report, path: Path, mode: int, owner: Owner, what: str) -> None:
    try:
        created = not path.is_dir()
        path.mkdir(parents=True, exist_ok=True)
        fixes = _fix_owner_mode(path, mode, owner)
    except OSError as e:
        raise SetupError(f"cannot create {what} {path}: {e.strerror}") from None
    who = f"{owner.user}:{owner.group}" + ("" if owner.apply else " (owner not set under --root)")
    if created:
        report.changed(f"created {what} {path} (mode {mode:04o}, {who})")
    elif fixes:
        report.changed(f"{what} {path}: set {', '.join(fixes)}")
    else:
        report.ok(f"{what} {path} in place")


def ensure_file(report: Report, path: Path, content: bytes, mode: int, owner: Owner, what: str, *,
                replace: bool = True) -> bool:
    """Write ``content`` when the file is missing (or differs and ``replace``); True when written."""
    try:
        exists = path.exists()
        same = exists and path.read_bytes() == content
        write = not exists or (replace and not same)
        if write:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(content)
            tmp.chmod(mode)
            os.replace(tmp, path)
        fixes = _fix_owner_mode(path, mode, owner)
    except OSError as e:
        raise SetupError(f"cannot write {what} {path}: {e.strerror}") from None
    if write:
        report.changed(f"{'updated' if exists else 'wrote'} {what} {path}")
    elif fixes:
        report.changed(f"{what} {path}: set {', '.join(fixes)}")
    elif exists and not same:
        report.ok(f"{what} {path} kept as it is (yours)")
    else:
        report.ok(f"{what} {path} up to date")
    return write
