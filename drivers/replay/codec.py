"""Read a ``timestamp,value`` CSV (the NAB layout) into numpy columns.

Rows are kept in file order. A row that steps back in time is not an error: the driver publishes it
flagged (see ``out_of_order``).
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from agent.contract import ConfigError


def _parse_ts(text: str) -> int:
    text = text.strip()
    try:
        return int(float(text) * (1000 if float(text) < 1e11 else 1))  # epoch s or ms
    except ValueError:
        pass
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _read_rows(path: Path, reader: csv.DictReader, ts_column: str, value_column: str, ts: list[int],
               values: list[float]) -> None:
    fields = reader.fieldnames or []
    for col in (ts_column, value_column):
        if col not in fields:
            raise ConfigError([f"{path}: replay file has no column {col!r} (columns: {', '.join(fields) or 'none'})"])
    for rowno, row in enumerate(reader, start=2):
        try:
            ts.append(_parse_ts(row[ts_column]))
        except (ValueError, TypeError, OverflowError, AttributeError):
            raise ConfigError([f"{path}:{rowno}: column {ts_column!r}: not a timestamp: {row[ts_column]!r}"]) from None
        try:
            values.append(float(row[value_column]))
        except (ValueError, TypeError):
            raise ConfigError([f"{path}:{rowno}: column {value_column!r}: not a number: {row[value_column]!r}"]) from None


def read_series(path: Path, *, ts_column: str = "timestamp", value_column: str = "value") -> tuple[np.ndarray, np.ndarray]:
    """Return (ts epoch ms int64, value float64). Errors name the file, row and column."""
    try:
        fh = path.open(newline="", encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{path}: cannot open replay file: {e.strerror}"]) from None
    ts: list[int] = []
    values: list[float] = []
    with fh:
        reader = csv.DictReader(fh)
        try:
            _read_rows(path, reader, ts_column, value_column, ts, values)
        except (UnicodeDecodeError, csv.Error) as e:  # random bytes, NULs, an endless field: not a CSV text file
            raise ConfigError([f"{path}: not a UTF-8 CSV text file (near line {reader.line_num + 1}: "
                               f"{str(e)[:120]})"]) from None
    if not ts:
        raise ConfigError([f"{path}: replay file has no data rows"])
    return np.asarray(ts, np.int64), np.asarray(values, np.float64)


def out_of_order(ts: np.ndarray) -> np.ndarray:
    """True for each row whose timestamp is earlier than an earlier row's (a step back in time)."""
    if len(ts) < 2:
        return np.zeros(len(ts), bool)
    return np.concatenate(([False], ts[1:] < np.maximum.accumulate(ts)[:-1]))
