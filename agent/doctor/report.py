"""One doctor check result: a mark, what was checked, what was found and what to do."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Mark(enum.StrEnum):
    OK = "✓"
    WARN = "!"
    FAIL = "✗"


@dataclass(frozen=True, slots=True)
class Check:
    mark: Mark
    subject: str  # what was checked: "broker TLS", "line rs485-1", "device meter"
    detail: str  # what was found
    hint: str = ""  # what to do (warnings and failures)

    def line(self) -> str:
        todo = f" → {self.hint}" if self.hint and self.mark is not Mark.OK else ""
        return f"{self.mark} {self.subject}: {self.detail}{todo}"


def ok(subject: str, detail: str) -> Check:
    return Check(Mark.OK, subject, detail)


def warn(subject: str, detail: str, hint: str = "") -> Check:
    return Check(Mark.WARN, subject, detail, hint)


def fail(subject: str, detail: str, hint: str = "") -> Check:
    return Check(Mark.FAIL, subject, detail, hint)
