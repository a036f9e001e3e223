"""The architecture rules in pyproject.toml ([tool.importlinter]) hold: `lint-imports`, one contract at a time.

Each contract runs as its own test, so a broken rule names itself (and lint-imports prints the
offending import chain)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _lint_imports() -> list[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is not installed: python3 -m pip install -e '.[dev]'")
    return [exe]


@pytest.mark.parametrize("contract", [pytest.param(c, id=c["id"]) for c in CONTRACTS])
def test_import_contract_is_kept(contract: dict) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([*_lint_imports(), "--no-cache", "--contract", contract["id"]], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"contract {contract['name']!r} broken:\n{proc.stdout}{proc.stderr}"


def test_every_rule_the_architecture_names_has_a_contract() -> None:
    ids = {c["id"] for c in CONTRACTS}
    assert {"transports", "drivers", "kernels", "daemon", "acyclic"} <= ids
