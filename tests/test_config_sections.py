"""Config sections register themselves: the built-in feature sections through ``agent.sections``, an
installed package's through the ``edge_agent.sections`` entry-point group; ``check`` validates a
registered section like a built-in one (file:line: key: message) and runs its whole-file checks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.config import AgentConfig, CoreConfig, load_config_text
from agent.config.schema import CORE_SECTIONS
from agent.config.sections import registered_sections

PLUGIN = '''
from pydantic import Field

from agent.config.sections import Section
from agent.contract import Frozen, Name


class WeatherConfig(Frozen):
    station: Name = Field(description="Device that measures the weather.")
    interval: float = Field(60.0, gt=0, description="Seconds between reports.")


def cross_check(weather, devices):
    if weather.station in {d.name for d in devices}:
        return []
    return [(("weather", "station"), f"no device named {weather.station!r}")]


SECTION = Section("weather", WeatherConfig, "Weather reports.", optional=True, cross_check=cross_check)
'''


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    """A package that registers a [weather] section through the entry-point group."""
    site = tmp_path / "site"
    (site / "weather_section").mkdir(parents=True)
    (site / "weather_section" / "__init__.py").write_text(PLUGIN)
    info = site / "weather_section-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: weather-section\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[edge_agent.sections]\nweather = weather_section:SECTION\n")
    return site


def check(site: Path, tmp_path: Path, weather: str) -> subprocess.CompletedProcess:
    csv = tmp_path / "x.csv"
    csv.write_text("timestamp,value\n2024-01-01 00:00:00,1\n")
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(textwrap.dedent(f'''\
        [gateway]
        id = "gw-1"
        state_dir = "{tmp_path}"
        [mqtt]
        host = "127.0.0.1"
        [[devices]]
        name = "r"
        type = "replay"
        file = "{csv}"
        [weather]
        ''') + weather)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "agent.cli.main", "check", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120, env=env)


def test_an_installed_package_adds_a_section_that_check_validates(plugin: Path, tmp_path: Path) -> None:
    ok = check(plugin, tmp_path, 'station = "r"\n')
    assert ok.returncode == 0, ok.stderr

    bad = check(plugin, tmp_path, 'station = "r"\ninterval = -1\n')
    assert bad.returncode == 2
    assert f"{tmp_path / 'cfg.toml'}:12: weather.interval: Input should be greater than 0" in bad.stderr

    unknown = check(plugin, tmp_path, 'station = "r"\nwind = 3\n')
    assert unknown.returncode == 2
    assert ":12: weather.wind: unknown key" in unknown.stderr

    crossed = check(plugin, tmp_path, 'station = "roof"\n')
    assert crossed.returncode == 2
    assert ":11: weather.station: no device named 'roof'" in crossed.stderr


def test_without_the_package_the_section_is_unknown(tmp_path: Path) -> None:
    r = check(tmp_path / "empty", tmp_path, 'station = "r"\n')
    assert r.returncode == 2
    assert ":10: weather: unknown section" in r.stderr


def test_the_root_type_is_the_core_plus_the_registered_sections() -> None:
    names = [s.name for s in registered_sections()]
    assert names == ["processing", "site", "commands", "homeassistant", "metrics", "web"]
    assert list(AgentConfig.model_fields) == [*CORE_SECTIONS, *names]
    assert issubclass(AgentConfig, CoreConfig)
    cfg = load_config_text('[gateway]\nid = "gw"\n', env={})
    assert isinstance(cfg, AgentConfig)
    assert cfg.site is None and cfg.homeassistant is None  # optional sections: absent unless present
    assert cfg.commands.enabled and not cfg.metrics.enabled  # the others: their defaults


def test_the_config_reference_lists_the_registered_sections() -> None:
    from agent.docgen import render

    text = render()
    assert "[processing], [site], [commands], [homeassistant], [metrics], [web] are registered" in text
    assert "## [site]\n\nSite load management and time-of-use charging." in text
