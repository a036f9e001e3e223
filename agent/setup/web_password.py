"""``setup --web-password``: the web page's login password, hashed into the service's state directory."""

from __future__ import annotations

from ..web.config import PASSWORD_FILE
from ..web.password import hash_password, verify
from .install import SERVICE, STATE_DIR, SetupOptions
from .steps import Owner, Report, ensure_file


def install_web_password(report: Report, opts: SetupOptions, password: str) -> None:
    path = opts.at(STATE_DIR) / PASSWORD_FILE
    try:
        if verify(password, path.read_text()):
            report.ok(f"{path}: web password unchanged")
            return
    except OSError:
        pass
    ensure_file(report, path, (hash_password(password) + "\n").encode(), 0o600, Owner(SERVICE, SERVICE, not opts.dry),
                "web password (scrypt hash)")
