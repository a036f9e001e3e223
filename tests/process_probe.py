"""What each Python process of a test's subprocess tree was: a ``sitecustomize`` put on its PYTHONPATH
(inherited across ``os.execv``) records every interpreter start (PID, ``sys.flags.optimize``, argv) and,
at a clean exit, the modules loaded. No hook in the product: it is Python's own start-up that runs it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

SITECUSTOMIZE = """
import atexit, json, os, sys
_out = os.environ.get("EDGE_AGENT_TEST_PROBE")
if _out:
    def _write(kind, **more):
        with open(_out, "a") as f:
            f.write(json.dumps({"kind": kind, "pid": os.getpid(), "optimize": sys.flags.optimize,
                                "argv": sys.orig_argv, **more}) + "\\n")
    _write("start")
    atexit.register(lambda: _write("exit", modules=sorted(sys.modules)))
"""


@dataclass
class Probe:
    dir: Path

    @property
    def path(self) -> Path:
        return self.dir / "probe.jsonl"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this environment) with the probe on PYTHONPATH."""
        env = dict(os.environ if base is None else base)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.dir), env.get("PYTHONPATH")]))
        env["EDGE_AGENT_TEST_PROBE"] = str(self.path)
        return env

    def records(self, kind: str | None = None) -> list[dict]:
        if not self.path.exists():
            return []
        rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return [r for r in rows if kind is None or r["kind"] == kind]


def probe(dir: Path) -> Probe:
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return Probe(dir)
