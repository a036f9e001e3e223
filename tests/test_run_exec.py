"""``edge-agent run`` validates, then executes its lean run-time process in place (agent.runtime): the
real service against a real mosquitto keeps its PID, runs under ``python -OO`` with its bytecode cached in
the state directory, loads neither click nor the config loader, and delivers; a run-time process that
cannot read what it was handed says so and exits non-zero."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from process_probe import probe

from agent.runtime import handoff, start

CONFIG = """
[gateway]
id = "gw"
state_dir = "{state}"

[mqtt]
host = "{host}"
port = {port}
username = "u"
password = "not-on-disk"

[[devices]]
name = "load"
type = "replay"
file = "{csv}"
"""

# loaded by validation only: the command line, the TOML parser, the loader and its hints
VALIDATION_ONLY = ("click", "tomllib", "agent.cli", "agent.config.loader", "agent.config.validate", "agent.hints")


def write_config(tmp_path: Path, broker) -> Path:
    csv = tmp_path / "load.csv"
    csv.write_text("timestamp,value\n" + "".join(f"2026-01-01T00:0{i}:00,{i}.5\n" for i in range(5)))
    config = tmp_path / "agent.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state", host=broker.host, port=broker.port, csv=csv))
    return config


def start_agent(tmp_path: Path, broker, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    return start_agent_on(write_config(tmp_path, broker), tmp_path, env)


def start_agent_on(config: Path, tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "agent.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "run", "--config", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    return proc, log


def stop(proc: subprocess.Popen) -> int:
    os.kill(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def test_run_executes_a_lean_optimized_run_time_process_in_place_and_delivers(
        tmp_path: Path, mosquitto, mqtt_subscriber, warmed_kernel_cache) -> None:
    warmed_kernel_cache(tmp_path / "state" / "numba-cache")
    sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/#")
    seen = probe(tmp_path / "probe")
    proc, log = start_agent(tmp_path, mosquitto, seen.env())
    try:
        sub.wait_for(1, timeout=120)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        held = {os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")}
    finally:
        code = stop(proc)
    assert code == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    assert b"-OO" in cmdline and b"agent.runtime" in cmdline, cmdline
    assert not [h for h in held if "edge-agent-config" in h]  # the hand-off was read and closed
    starts, exits = seen.records("start"), seen.records("exit")
    assert [r["pid"] for r in starts] == [proc.pid, proc.pid]  # validated, then executed in place
    assert [r["optimize"] for r in starts] == [0, 2]
    assert len(exits) == 1 and exits[0]["optimize"] == 2
    mods = set(exits[0]["modules"])
    assert "agent.app" in mods and "agent.uplink.mqtt" in mods
    assert not [m for m in mods if m.startswith(VALIDATION_ONLY)], sorted(m for m in mods if m.startswith(VALIDATION_ONLY))
    # its bytecode is cached in the state directory, this user's alone; the config's secrets are nowhere on disk
    cache = tmp_path / "state" / "pycache"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert list(cache.rglob("app.cpython-*.opt-2.pyc"))
    assert not [p for p in (tmp_path / "state").rglob("*") if p.is_file() and b"not-on-disk" in p.read_bytes()]


def environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(p.split("=", 1) for p in pairs if "=" in p)


def test_the_run_time_process_keeps_one_malloc_arena_and_no_openblas_threads_unless_the_operator_says(
        tmp_path: Path, mosquitto, mqtt_subscriber, warmed_kernel_cache) -> None:
    warmed_kernel_cache(tmp_path / "state" / "numba-cache")
    sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/#")
    env = {k: v for k, v in os.environ.items() if k not in start.RUNTIME_ENV}
    proc, log = start_agent(tmp_path, mosquitto, {**env, "OPENBLAS_NUM_THREADS": "2"})  # the operator's own
    try:
        sub.wait_for(1, timeout=120)
        seen = environ(proc.pid)
    finally:
        assert stop(proc) == 0, log.read_text()[-3000:]
    assert seen["MALLOC_ARENA_MAX"] == "1" and seen["OPENBLAS_NUM_THREADS"] == "2"
    assert start.runtime_environ({"MALLOC_ARENA_MAX": "4"}) == {"MALLOC_ARENA_MAX": "4", "OPENBLAS_NUM_THREADS": "1"}


def test_run_can_stay_in_one_process(tmp_path: Path, mosquitto, mqtt_subscriber, warmed_kernel_cache) -> None:
    """EDGE_AGENT_EXEC=0 (or an exec that fails): the validating process runs the agent itself, as before."""
    warmed_kernel_cache(tmp_path / "state" / "numba-cache")
    sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/#")
    seen = probe(tmp_path / "probe")
    proc, log = start_agent(tmp_path, mosquitto, {**seen.env(), "EDGE_AGENT_EXEC": "0"})
    try:
        sub.wait_for(1, timeout=120)
    finally:
        assert stop(proc) == 0, log.read_text()[-3000:]
    starts, exits = seen.records("start"), seen.records("exit")
    assert [(r["pid"], r["optimize"]) for r in starts + exits] == [(proc.pid, 0), (proc.pid, 0)]
    assert "agent.uplink.mqtt" in exits[0]["modules"]


def test_a_warm_start_compiles_nothing(tmp_path: Path, mosquitto, mqtt_subscriber, warmed_kernel_cache) -> None:
    warmed_kernel_cache(tmp_path / "state" / "numba-cache")
    for run in ("first", "warm"):
        sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/#")
        proc, log = start_agent(tmp_path, mosquitto, {**os.environ})
        try:
            sub.wait_for(1, timeout=120)
        finally:
            assert stop(proc) == 0, log.read_text()[-3000:]
        cached = {p: p.stat().st_mtime_ns for p in (tmp_path / "state" / "pycache").rglob("*.pyc")}
        if run == "first":
            first = cached
    assert cached == first  # the second start read every module's bytecode, wrote none


def test_warmup_compiles_the_drivers_factories_a_start_imports(tmp_path: Path) -> None:
    """The built-in drivers name their factories as "module:attr" (imported by the run-time process,
    not with the driver's package): the bytecode written ahead of a first start includes them."""
    r = subprocess.run([sys.executable, "-OO", "-X", f"pycache_prefix={tmp_path}", "-m", "agent.runtime.precompile"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for module in ("drivers/modbus_meter/driver", "drivers/replay/driver", "drivers/sunspec/driver", "agent/bus/modbus"):
        name = Path(module)
        assert list(tmp_path.rglob(f"{name.parent}/{name.name}.cpython-*.opt-2.pyc")), f"{module} not compiled"


def test_a_run_time_process_that_cannot_read_its_hand_off_says_so(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-OO", "-m", "agent.runtime", "--handoff", "57"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and "cannot open the hand-off descriptor 57" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr

    other = tmp_path / "other"
    other.write_bytes(b"not a hand-off")
    with open(other, "rb") as fh:
        r = subprocess.run([sys.executable, "-m", "agent.runtime", "--handoff", str(fh.fileno())],
                           capture_output=True, text=True, timeout=120, pass_fds=(fh.fileno(),))
    assert r.returncode != 0 and "does not hold a config handed over by `edge-agent run`" in r.stderr, r.stderr

    r = subprocess.run([sys.executable, "-m", "agent.runtime"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--handoff FD is required" in r.stderr


def test_the_hand_off_keeps_what_it_was_given(tmp_path: Path) -> None:
    fd = handoff.dump({"password": "s3cret"}, {"argv": ["python", "edge-agent", "run"], "trial": None})
    handed = handoff.load(fd)
    assert handed.meta == {"argv": ["python", "edge-agent", "run"], "trial": None}
    assert handed.config() == {"password": "s3cret"}


def test_a_config_pickle_cannot_write_is_a_hand_off_error_so_run_stays_in_one_process() -> None:
    # e.g. a third-party driver's model holding a function: `run` then runs in its own process (start.py)
    import pytest

    with pytest.raises(handoff.HandoffError, match="cannot hand the config over"):
        handoff.dump({"decode": lambda r: r[0]}, {})


def test_a_retry_with_openssl_asked_by_the_run_time_process_counts_no_second_trial_start(monkeypatch) -> None:
    """The validating process counted a pushed config's start; the run-time process's retry is that start."""
    from agent.cli import without_ssl
    from agent.runtime import nossl

    execs: list[list[str]] = []
    monkeypatch.setattr(nossl.os, "execv", lambda exe, argv: execs.append(argv))
    nossl.start_again_with_ssl(["edge-agent", "run", "-c", "x.toml"], counted=True)
    assert execs == [[sys.executable, "run", "-c", "x.toml"]]
    assert not without_ssl.prepare(["run", "-c", "x.toml"])  # ssl loads in the started process
    assert without_ssl.restarted_by_confirm  # so `run` counts no second start of the trial
    monkeypatch.setenv(nossl.RESTART_ENV, "retry")  # a retry of the validating process's own: not counted yet
    without_ssl.prepare(["run", "-c", "x.toml"])
    assert not without_ssl.restarted_by_confirm


def test_an_invalid_config_is_reported_once_and_run_exits_2(tmp_path: Path, mosquitto) -> None:
    """Validation runs beside the run-time process's start (agent.runtime.beside): its errors are the
    ones `check` prints, printed once, and the PID systemd watches exits 2 (no restart loop)."""
    seen = probe(tmp_path / "probe")
    config = write_config(tmp_path, mosquitto)
    config.write_text(config.read_text().replace('id = "gw"', 'id = "gw"\nno_such_key = 1'))
    proc, log = start_agent_on(config, tmp_path, seen.env())
    assert proc.wait(120) == 2, log.read_text()[-3000:]
    text = log.read_text()
    assert text.count("config invalid: 1 problem(s)") == 1 and "no_such_key" in text, text
    assert "Traceback" not in text
    starts = [r for r in seen.records("start") if r["pid"] == proc.pid]
    assert [r["optimize"] for r in starts] == [0, 2]  # the run-time process had started; it exits with the code


def test_a_pushed_config_that_fails_validation_at_start_is_rolled_back_in_the_same_pid(
        tmp_path: Path, mosquitto, mqtt_subscriber, warmed_kernel_cache) -> None:
    """The validating process finds the config on trial invalid: it rolls back and the run-time process (the
    PID systemd watches) starts `run` again on the previous config, which delivers."""
    from agent.remote import ConfigFiles

    warmed_kernel_cache(tmp_path / "state" / "numba-cache")
    files = ConfigFiles(write_config(tmp_path, mosquitto))
    good = files.path.read_text()
    bad = good.replace(str(tmp_path / "load.csv"), str(tmp_path / "missing.csv"))
    files.candidate.write_text(bad)
    files.stage(bad.encode(), cid="cfg-1", version=7, timeout_s=30)
    assert files.path.read_text() == bad
    sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/#")
    seen = probe(tmp_path / "probe")
    proc, log = start_agent_on(files.path, tmp_path, seen.env())
    try:
        sub.wait_for(1, timeout=120)
        alive = proc.poll() is None
    finally:
        code = stop(proc)
    text = log.read_text()
    assert alive and code == 0, text[-3000:]
    assert files.path.read_text() == good  # the previous config is back, and it is what runs
    assert "the pushed config cannot start" in text and "rolling back" in text, text[-3000:]
    assert "Traceback" not in text
    # `run` then the run-time process beside its validation; started again by it, on the previous config
    assert [(r["pid"], r["optimize"]) for r in seen.records("start")] == [(proc.pid, 0), (proc.pid, 2)] * 2



def test_debug_before_run_reaches_the_run_time_process(tmp_path: Path, mosquitto, mqtt_subscriber,
                                                       warmed_kernel_cache) -> None:
    """`edge-agent --debug run` logs at DEBUG: the group's option is read before the fork."""
    warmed_kernel_cache(tmp_path / "state" / "numba-cache")
    sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/#")
    config = write_config(tmp_path, mosquitto)
    log = tmp_path / "agent.log"
    env = {k: v for k, v in os.environ.items() if k != "EDGE_AGENT_DEBUG"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "--debug", "run", "--config", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    try:
        sub.wait_for(1, timeout=120)
    finally:
        assert stop(proc) == 0, log.read_text()[-3000:]
    assert f"DEBUG edge_agent: run-time process {proc.pid}" in log.read_text(), log.read_text()[-3000:]


def test_run_help_and_version_print_and_exit_0(tmp_path: Path, mosquitto) -> None:
    config = write_config(tmp_path, mosquitto)
    for argv in (["run", "--help", "-c", str(config)], ["run", "-h"], ["--version", "run", "-c", str(config)]):
        r = subprocess.run([sys.executable, "-m", "agent.cli.main", *argv], capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)
        assert r.returncode == 0, (argv, r.stdout, r.stderr)
        assert "hand" not in r.stderr and "error" not in r.stderr, (argv, r.stderr)
        assert ("Usage:" in r.stdout) or ("version" in r.stdout), (argv, r.stdout)


def test_a_start_with_sigchld_ignored_still_runs(tmp_path: Path, mosquitto, mqtt_subscriber,
                                                 warmed_kernel_cache) -> None:
    """A launcher that ignores SIGCHLD (inherited across exec) would have the validating child reaped unseen."""
    warmed_kernel_cache(tmp_path / "state" / "numba-cache")
    sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/#")
    config = write_config(tmp_path, mosquitto)
    code = ("import os, signal, sys\nsignal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
            "os.execv(sys.executable, [sys.executable, '-m', 'agent.cli.main', 'run', '--config', sys.argv[1]])\n")
    log = tmp_path / "agent.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, str(config)], stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path)
    try:
        sub.wait_for(1, timeout=120)
    finally:
        assert stop(proc) == 0, log.read_text()[-3000:]


# a launcher where the run-time process cannot be executed: the test's own hook, not the product's
EXEC_FAILS = """
import os
_execv, _execve = os.execv, os.execve
def execv(path, argv):
    if "--validator" in argv:
        raise OSError(8, "Exec format error")
    return _execv(path, argv)
def execve(path, argv, env):
    if "--validator" in argv:
        raise OSError(8, "Exec format error")
    return _execve(path, argv, env)
os.execv, os.execve = execv, execve
"""


def test_when_the_run_time_process_cannot_start_the_child_s_validation_is_used_in_one_process(
        tmp_path: Path, mosquitto, mqtt_subscriber, warmed_kernel_cache) -> None:
    """The child has validated (and counted a pushed config's start): the agent runs on its hand-off in
    the PID, without a second validation that would count the trial twice and roll it back."""
    from agent.remote import ConfigFiles

    warmed_kernel_cache(tmp_path / "state" / "numba-cache")
    files = ConfigFiles(write_config(tmp_path, mosquitto))
    new = files.path.read_text().replace('id = "gw"', 'id = "gw"\nlog_level = "INFO"')
    files.candidate.write_text(new)
    files.stage(new.encode(), cid="cfg-2", version=9, timeout_s=300)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(EXEC_FAILS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))}
    sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/#")
    proc, log = start_agent_on(files.path, tmp_path, env)
    try:
        sub.wait_for(1, timeout=120)
    finally:
        code = stop(proc)
    text = log.read_text()
    assert code == 0 and "cannot start the run-time process" in text, text[-3000:]
    assert text.count(f"config {files.path} loaded") == 1, text[-3000:]  # validated once
    push = files.load()  # the pushed config ran (and, the broker reached, was confirmed): not rolled back
    assert push.version == 9 and files.path.read_text() == new and "rolling back" not in text, (push, text[-3000:])


def test_a_start_again_in_one_process_is_for_that_start_only(tmp_path: Path, monkeypatch) -> None:
    """A config that cannot be handed over starts `run` again in one process, its trial start counted;
    the marker is one-shot, so a later start (a push) tries the hand-over again."""
    from agent.cli import without_ssl
    from agent.runtime import nossl

    config = tmp_path / "agent.toml"
    config.write_text('[mqtt]\nhost = "b"\n')
    monkeypatch.setenv(nossl.RESTART_ENV, without_ssl.ONE_PROCESS)
    once = without_ssl.plan(["run", "-c", str(config)])
    assert once.service and not once.beside and without_ssl.in_one_process and without_ssl.restarted_by_confirm
    assert nossl.RESTART_ENV not in os.environ
    later = without_ssl.plan(["run", "-c", str(config)])
    assert later.beside and not without_ssl.in_one_process and not without_ssl.restarted_by_confirm


def test_the_state_directory_the_start_guesses_is_the_schemas_default(tmp_path: Path) -> None:
    from agent.cli.without_ssl import state_dir_guess
    from agent.config.schema import GatewayConfig

    assert state_dir_guess({}) == str(GatewayConfig.model_fields["state_dir"].default)
    assert state_dir_guess({"gateway": {"state_dir": "/srv/x"}}) == "/srv/x"
    assert state_dir_guess({"gateway": {"state_dir": "${STATE}"}}) is None  # validation resolves it


def test_a_first_start_writes_its_bytecode_into_the_state_directory_only(
        tmp_path: Path, mosquitto, mqtt_subscriber, warmed_kernel_cache) -> None:
    """No state directory yet: the run-time process starts before validation says where it is, and writes
    no bytecode beside the sources (an install's, often read-only); the cache is filled once it is known."""
    import agent

    warmed_kernel_cache(tmp_path / "kernels")
    sub = mqtt_subscriber(mosquitto, "edge/gw/telemetry/#")
    sources = Path(agent.__file__).resolve().parent
    before = {p for p in sources.rglob("*.opt-2.pyc")}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc, log = start_agent(tmp_path, mosquitto, {**env, "NUMBA_CACHE_DIR": str(tmp_path / "kernels")})
    try:
        sub.wait_for(1, timeout=120)
    finally:
        assert stop(proc) == 0, log.read_text()[-3000:]
    assert not {p for p in sources.rglob("*.opt-2.pyc")} - before
    assert list((tmp_path / "state" / "pycache").rglob("app.cpython-*.opt-2.pyc"))
