"""``edge-agent ingest`` without the ``[ingest]`` extra: the rest of the CLI works, the ingest names
what to install; bad options are named."""

from __future__ import annotations

import subprocess
import sys

BLOCK = "import sys; sys.modules['psycopg'] = None; sys.modules['aio_pika'] = None; "


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, timeout=120)


def test_without_the_extra_the_cli_starts_and_ingest_names_the_missing_extra() -> None:
    r = run("from agent.cli.main import main; sys.argv = ['edge-agent', '--help']; main()")
    assert r.returncode == 0 and "ingest" in r.stdout and "fleet" in r.stdout, r.stderr
    r = run("from agent.cli.main import main; sys.argv = ['edge-agent', 'ingest', 'migrate', '--dsn', 'x']; main()")
    assert r.returncode == 1
    assert "install the ingest extra" in r.stderr and "Traceback" not in r.stderr


def test_a_bad_mqtt_host_is_named() -> None:
    r = subprocess.run([sys.executable, "-m", "agent.cli.main", "ingest", "mqtt", "--dsn", "x", "--host", "nohost",
                        "--client-id", "c"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "'nohost' is not host:port" in r.stderr
