"""Files the config points at that hold random bytes: each error names the file, never a traceback."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.config import load_config_text
from agent.errors import ConfigError
from agent.processing.config import CarbonConfig

GARBAGE = random.Random(3).randbytes(2000)


def test_an_hourly_factor_file_of_random_bytes_is_named(tmp_path: Path) -> None:
    f = tmp_path / "factors.csv"
    f.write_bytes(GARBAGE)
    with pytest.raises(ValidationError, match=f"{f}: not UTF-8 text"):
        CarbonConfig(hourly_file=f)


def test_a_credential_of_random_bytes_is_named(tmp_path: Path) -> None:
    (tmp_path / "mqtt-password").write_bytes(b"\xff\xfe" + GARBAGE)
    text = '[gateway]\nid = "gw"\n[mqtt]\nhost = "h"\npassword = "${cred:mqtt-password}"\n'
    with pytest.raises(ConfigError, match=f"credential 'mqtt-password' cannot be read from {tmp_path / 'mqtt-password'}: "
                                          "not UTF-8 text"):
        load_config_text(text, env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
