"""Machine checks: referenced files readable, clock synchronised, state directory writable, disk
space against the outbox cap."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..config.schema import AgentConfig
from ..config.validate import file_problem
from ..contract.plain import field_names
from ..timesync import TimeSync, time_sync_status
from .report import Check, fail, ok, warn

MIB = 1024 * 1024
LOW_FREE_BYTES = 64 * MIB  # below this the SD card is nearly full, whatever the cap


def referenced_files(cfg: AgentConfig) -> list[tuple[str, Path]]:
    """(config key, path) of every file the config names: TLS files, files of devices (replay CSV ...)."""
    out: list[tuple[str, Path]] = []
    tls = cfg.mqtt.tls
    if tls is not None and tls.enabled:
        out += [(f"mqtt.tls.{k}", f) for k, f in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file),
                                                   ("key_file", tls.key_file)) if f is not None]
    for dev in cfg.devices:
        out += [(f"devices.{dev.name}.{k}", v) for k in field_names(dev)
                if isinstance(v := getattr(dev, k), Path)]
    return out


def check_files(cfg: AgentConfig) -> list[Check]:
    out = []
    for key, path in referenced_files(cfg):
        problem = file_problem(path)
        out.append(ok(f"file {key}", f"{path} readable") if problem is None
                   else fail(f"file {key}", problem, "restore the file or fix the path in the config"))
    return out


def check_clock(cfg: AgentConfig, sync: TimeSync | None = None) -> Check:
    sync = sync or time_sync_status()
    if sync.synchronized:
        return ok("clock", f"synchronised ({sync.source})")
    hint = "enable a time service (`timedatectl set-ntp true`, or chrony) and let it reach an NTP server"
    if sync.synchronized is None:
        return warn("clock", f"synchronisation cannot be determined ({sync.detail})", hint)
    if cfg.gateway.require_time_sync:
        return fail("clock", f"not synchronised ({sync.detail}); with require_time_sync = true every reading "
                    "is held (not published) until it is", hint)
    return warn("clock", f"not synchronised ({sync.detail}); timestamps may be wrong", hint)


def _existing_ancestor(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _size(n: float) -> str:
    return f"{n / MIB:.0f} MiB" if n < 10 * 1024 * MIB else f"{n / (1024 * MIB):.1f} GiB"


def outbox_bytes(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            total += (path.parent / (path.name + suffix)).stat().st_size
        except OSError:
            pass
    return total


def check_storage(cfg: AgentConfig) -> list[Check]:
    state = cfg.gateway.state_dir
    out: list[Check] = []
    if state.is_dir():
        if os.access(state, os.W_OK | os.X_OK):
            out.append(ok("state dir", f"{state} writable"))
        else:
            out.append(fail("state dir", f"{state} is not writable by this user",
                            "chown the directory to the service user (the unit's StateDirectory= does it)"))
    elif state.exists():
        out.append(fail("state dir", f"{state} exists and is not a directory", "fix gateway.state_dir"))
        return out
    else:
        base = _existing_ancestor(state)
        if os.access(base, os.W_OK | os.X_OK):
            out.append(ok("state dir", f"{state} does not exist yet; `run` creates it in {base}"))
        else:
            out.append(fail("state dir", f"{state} does not exist and {base} is not writable by this user",
                            "create it for the service user (the unit's StateDirectory= does it)"))
    usage = shutil.disk_usage(_existing_ancestor(cfg.outbox_path.parent))
    used = outbox_bytes(cfg.outbox_path)
    cap = cfg.store.max_bytes
    room = usage.free + used  # what the outbox could grow to on this disk
    where = f"{_size(usage.free)} free of {_size(usage.total)}; store cap {_size(cap)}, outbox now {_size(used)}"
    if cap > room:
        out.append(warn("disk", f"{where}: the disk fills before the cap applies",
                        f"lower [store] max_bytes to at most {_size(max(room - LOW_FREE_BYTES, 0))} or free space"))
    elif usage.free < LOW_FREE_BYTES:
        out.append(warn("disk", f"{where}: the disk is nearly full", "free space on this disk"))
    else:
        out.append(ok("disk", where))
    return out
