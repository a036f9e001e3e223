"""The central system's transactions, kept in the state directory so that a restart forgets nothing.

One small JSON file per OCPP line (``ocpp-<line>.json``), replaced atomically (fsynced) on every
change: the next transaction id to hand out and the running transactions of every charge point
(connector -> id and meterStart). Transaction ids are never reused: the counter survives restarts,
and an id a charge point reports (MeterValues, StopTransaction) that we did not hand out moves the
counter above it. A damaged file is set aside (``.damaged``), named in the log, and the counter then
starts from the wall clock's seconds since 2020 when the clock is set, so new ids stay above old ones.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("drivers.ocpp_charger.server")
EPOCH_2020 = 1_577_836_800
MAX_TX_ID = 2**31 - 1  # OCPP integer: many charge points store it as int32


class TxStore:
    def __init__(self, path: Path | None):
        self.path = path
        self.next_tx = 1
        self.open: dict[str, dict[int, dict[str, Any]]] = {}  # cp_id -> connector -> {"tx", "meter_start_wh"}
        self.loaded = path is None

    def load(self) -> None:
        """Read the file (once: when the line opens, not when a config is only checked)."""
        if self.loaded or self.path is None:
            return
        self.loaded = True
        path = self.path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        try:
            data = json.loads(text)
            next_tx = int(data["next_tx"])
            opened = {str(cp): {int(c): {"tx": int(t["tx"]), "meter_start_wh": _opt_float(t.get("meter_start_wh"))}
                                for c, t in conns.items()} for cp, conns in data.get("open", {}).items()}
            if not 1 <= next_tx <= MAX_TX_ID:
                raise ValueError(f"next_tx {next_tx} out of range")
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            aside = path.with_name(path.name + ".damaged")
            os.replace(path, aside)
            wall = int(time.time()) - EPOCH_2020
            self.next_tx = max(1, min(wall, MAX_TX_ID // 2))
            log.error("OCPP transaction state %s is damaged (%s): set aside as %s; running transactions are "
                      "recovered from the charge points, new ids start at %d", path, e, aside, self.next_tx)
            return
        self.next_tx, self.open = next_tx, opened

    def running(self, cp_id: str) -> dict[int, dict[str, Any]]:
        return self.open.get(cp_id, {})

    def allocate(self) -> int:
        """A fresh transaction id, persisted before it is handed out."""
        tx = self.next_tx
        self.next_tx = tx + 1 if tx < MAX_TX_ID else 1
        self.save()
        return tx

    def started(self, cp_id: str, connector: int, tx: int, meter_start_wh: float | None) -> None:
        self.open.setdefault(cp_id, {})[connector] = {"tx": tx, "meter_start_wh": meter_start_wh}
        if self.next_tx <= tx < MAX_TX_ID:
            self.next_tx = tx + 1
        self.save()

    def seen(self, tx: int) -> None:
        """A charge point used id ``tx``: never hand it out again."""
        if self.next_tx <= tx < MAX_TX_ID:
            self.next_tx = tx + 1
            self.save()

    def stopped(self, cp_id: str, connector: int) -> None:
        if self.open.get(cp_id, {}).pop(connector, None) is not None:
            self.save()

    def save(self) -> None:
        if self.path is None:
            return
        data = {"next_tx": self.next_tx,
                "open": {cp: {str(c): t for c, t in conns.items()} for cp, conns in self.open.items() if conns}}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as e:  # a full or read-only disk must not stop charging; the charge point remembers
            log.error("cannot save OCPP transaction state to %s: %s", self.path, e)


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)
