"""Config loading: the broken-file corpus, env substitution, line numbers, and `edge-agent check`."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.config import load_config, load_config_text
from agent.config.validate import validate
from agent.errors import ConfigError

CORPUS = sorted((Path(__file__).parent / "config_corpus").glob("*.toml"))


def expected_key(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} lacks its '# expect:' header"
    return first.removeprefix("# expect: ").strip()


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_broken_config_is_rejected_naming_the_key(path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        validate(path, at_run=True, env={})
    text = str(exc.value)
    assert expected_key(path) in text, text
    # every problem names the file, and a line when the key exists in the text
    for problem in exc.value.problems:
        assert problem.startswith(str(path)), problem


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 20


def cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "agent.cli.main", *args], capture_output=True, text=True,
                          timeout=120, env={**base, **(env or {})}, cwd=cwd)


def test_check_and_run_refuse_every_corpus_file_with_the_same_message() -> None:
    # run is the real daemon entry point (a real process here): it must refuse exactly what check
    # refuses, before touching anything (no traceback, exit 2, the same lines), so systemd does not
    # restart it in a loop. check runs in-process to keep this quick; its own process is tested above.
    from click.testing import CliRunner

    from agent.cli.main import cli as edge_agent

    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda path: cli("run", "--config", str(path)), CORPUS))
    for path, run in zip(CORPUS, runs, strict=True):
        check = CliRunner().invoke(edge_agent, ["check", "--config", str(path)], env={"CREDENTIALS_DIRECTORY": None})
        assert check.exit_code == 2, (path.name, check.output)
        assert expected_key(path) in check.stderr, (path.name, check.stderr)
        assert run.returncode == 2, (path.name, run.stderr)
        assert run.stderr == check.stderr, path.name


@pytest.mark.parametrize("path", CORPUS[:2], ids=[p.stem for p in CORPUS[:2]])
def test_check_command_exits_2_and_lists_the_problem(path: Path) -> None:
    r = cli("check", "--config", str(path))
    assert r.returncode == 2, r.stderr
    assert expected_key(path) in r.stderr


def test_check_command_accepts_a_valid_file(tmp_path: Path) -> None:
    csv = tmp_path / "x.csv"
    csv.write_text("timestamp,value\n2024-01-01 00:00:00,1\n")
    cfg = tmp_path / "ok.toml"
    cfg.write_text(f'[gateway]\nid = "gw-1"\nstate_dir = "{tmp_path}"\n[mqtt]\nhost = "127.0.0.1"\n'
                   f'[[devices]]\nname = "r"\ntype = "replay"\nfile = "{csv}"\n')
    r = cli("check", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "config OK" in r.stdout and "replay" in r.stdout
    assert "clock here:" in r.stdout


EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "edge-agent.toml"


def test_shipped_example_passes_check_here_and_says_where_the_password_comes_from() -> None:
    r = cli("check", "--config", str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    assert "mqtt.password: from systemd credential 'mqtt-password'" in r.stdout
    assert "not available here" in r.stdout
    # the credential and the serial ports are warnings here, each with file:line
    assert f"warning: {EXAMPLE}:" in r.stderr and "mqtt.password" in r.stderr and "/dev/ttyAMA0" in r.stderr


def test_run_fails_cleanly_when_the_credential_does_not_resolve(tmp_path: Path) -> None:
    r = cli("run", "--config", str(EXAMPLE))
    assert r.returncode == 2
    assert "mqtt.password: ${cred:mqtt-password} used but CREDENTIALS_DIRECTORY is not set" in r.stderr
    assert "Traceback" not in r.stderr
    # with the credential present check reports that it resolves (and from where)
    (tmp_path / "mqtt-password").write_text("secret\n")
    r = cli("check", "--config", str(EXAMPLE), env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "mqtt.password: from systemd credential 'mqtt-password'" in r.stdout and "resolves here" in r.stdout


def test_a_missing_broker_host_is_refused_by_the_agent_itself(tmp_path: Path) -> None:
    from agent.app import Agent

    cfg = load_config_text(f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path / "state"}"\n', env={})
    with pytest.raises(ConfigError, match="mqtt.host: required"):
        Agent(cfg)
    assert not (tmp_path / "state").exists()  # refused before creating anything


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes("\ufeff[gateway]\nid = \"gw\"\nfoo = 1\n".encode())
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    assert exc.value.problems == [f"{path}:3: gateway.foo: unknown key (not part of this section's schema)"]
    path.write_bytes("\ufeff[gateway]\nid = \"gw\"\n".encode())
    assert load_config(path, env={}).gateway.id == "gw"


def test_line_numbers_point_at_the_offending_key() -> None:
    text = '[gateway]\nid = "gw"\n\n[[devices]]\nname = "a"\ntype = "replay"\nfile = "x"\n\n[[devices]]\nname = "b"\ntype = "replay"\nfile = "y"\nspeed = -3\n'
    with pytest.raises(ConfigError) as exc:
        load_config_text(text, source="site.toml", env={})
    assert exc.value.problems == ["site.toml:13: devices[1] (b).speed: Input should be greater than or equal to 0"]


def test_all_problems_are_listed_at_once() -> None:
    text = '[gateway]\nid = "gw"\n[mqtt]\nport = 0\nfoo = 1\n[[devices]]\nname = "a"\ntype = "nope"\n'
    with pytest.raises(ConfigError) as exc:
        load_config_text(text, env={})
    assert len(exc.value.problems) == 3


def test_env_substitution_defaults_literal_dollar_and_secrets_not_echoed(tmp_path: Path) -> None:
    text = ('[gateway]\nid = "${GW:-gw-default}"\n[mqtt]\nhost = "${BROKER}"\nusername = "u$$er"\n'
            'password = "${SECRET}"\n')
    cfg = load_config_text(text, env={"BROKER": "broker.local", "SECRET": "hunter2"})
    assert cfg.gateway.id == "gw-default"
    assert cfg.mqtt.host == "broker.local"
    assert cfg.mqtt.username == "u$er"
    assert cfg.mqtt.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.model_dump())


def test_systemd_credentials(tmp_path: Path) -> None:
    (tmp_path / "mqtt-password").write_text("s3cret\n")
    text = '[gateway]\nid = "gw"\n[mqtt]\nhost = "h"\npassword = "${cred:mqtt-password}"\n'
    cfg = load_config_text(text, env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert cfg.mqtt.password.get_secret_value() == "s3cret"
    with pytest.raises(ConfigError, match="credential 'other' cannot be read"):
        load_config_text(text.replace("mqtt-password", "other"), env={"CREDENTIALS_DIRECTORY": str(tmp_path)})


def test_config_objects_are_frozen() -> None:
    cfg = load_config_text('[gateway]\nid = "gw"\n', env={})
    with pytest.raises(ValidationError, match="frozen"):
        cfg.gateway.id = "other"  # type: ignore[misc]


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)


def test_shipped_example_config_is_valid(tmp_path: Path) -> None:
    (tmp_path / "mqtt-password").write_text("secret\n")
    example = Path(__file__).resolve().parents[1] / "config" / "edge-agent.toml"
    cfg = load_config(example, env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert [d.name for d in cfg.devices] == ["main-meter", "lighting", "lobby-pm"]
    assert cfg.mqtt.tls is not None and cfg.mqtt.password.get_secret_value() == "secret"


def test_config_reference_is_up_to_date() -> None:
    from agent.docgen import DOC, render

    assert DOC.read_text() == render(), "docs/config-reference.md is stale: run `python -m agent.docgen`"
