"""The web login's password: stored as a salted scrypt hash, one line, never the password itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

N, R, P = 2**14, 8, 1  # 16 MiB of memory per check: slow to guess, fine on a Pi
MIN_LENGTH = 8


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64)."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"the web password must have at least {MIN_LENGTH} characters")
    salt = salt or os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(key)}"


def verify(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.strip().split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(key)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(want), maxmem=128 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def read_hash(path: Path) -> str | None:
    """The stored hash, or None when no password is set (the page is then read-only)."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return text if text.startswith("scrypt$") else None


def write_hash(path: Path, password: str) -> None:
    """Write the hash atomically, readable by the owner only."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(hash_password(password) + "\n")
    os.replace(tmp, path)
