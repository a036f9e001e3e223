"""Where numba cannot be installed (32-bit Pi OS) the kernels run as Python: the kernel tests, a short
agent run and the processing results hold there too. Each runs in a subprocess whose interpreter
cannot import numba or llvmlite (a sitecustomize installs an import blocker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_processing_pipeline import SCRIPT as PROCESSING_SCRIPT

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SAMPLES = ROOT / "drivers" / "replay" / "samples"

BLOCKER = '''
import sys


class NoNumba:
    """As if numba and llvmlite were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("numba", "llvmlite"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoNumba())
'''


@pytest.fixture(scope="module")
def no_numba_env(tmp_path_factory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("no-numba")
    (site / "sitecustomize.py").write_text(BLOCKER)
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", ""), str(ROOT)])
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("NUMBA_DISABLE_JIT", None)
    probe = subprocess.run([sys.executable, "-c", "import numba"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'numba'" in probe.stderr
    return env


def python(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_kernel_tests_pass_without_numba(no_numba_env) -> None:
    r = python(["-m", "pytest", "-q", "-p", "no:cacheprovider", str(TESTS / "test_processing_kernels.py"),
                str(TESTS / "test_detect_shape_time.py")], no_numba_env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "skipped" not in r.stdout and "error" not in r.stdout.lower()


def test_processing_without_numba_gives_the_results_numba_gives(tmp_path, no_numba_env) -> None:
    results = []
    for name, env, jit in (("numba", {**os.environ, "NUMBA_DISABLE_JIT": "0"}, "on"), ("python", no_numba_env, "off")):
        code = PROCESSING_SCRIPT.format(tests=str(TESTS), state=str(tmp_path / name), jit=jit, pre="")
        r = python(["-c", code], env)
        assert r.returncode == 0, r.stderr[-2000:]
        results.append(json.loads(r.stdout))
    (kind, out), (python_kind, python_out) = results
    assert kind in ("aot", "jit") and python_kind == "python"
    assert out == python_out


def test_a_short_agent_run_without_numba(tmp_path, no_numba_env) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f'''
[gateway]
id = "gw-armhf"
state_dir = "{tmp_path / 'state'}"
[mqtt]
host = "localhost"
[[devices]]
name = "load"
type = "replay"
file = "{SAMPLES / 'building_load_kw.csv'}"
metric = "power"
unit = "kW"
''')
    r = python(["-m", "agent.cli.main", "run", "--once", "--config", str(cfg)], no_numba_env)
    assert r.returncode == 0, r.stderr
    topic, body = r.stdout.splitlines()[0].split(" ", 1)
    assert topic == "edge/gw-armhf/telemetry/load"
    reading = json.loads(body)["readings"][0]
    assert reading["metric"] == "power" and reading["q"] == 0
    warmup = python(["-m", "agent.cli.main", "warmup", "--state-dir", str(tmp_path / "state")], no_numba_env)
    assert warmup.returncode == 0 and "pure Python" in warmup.stdout
