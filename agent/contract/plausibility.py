"""Cross-metric plausibility of one decoded frame, declared by a driver as data.

A sensor family has relations its values always satisfy (a PMS5003's PM1 <= PM2.5 <= PM10, its
particle counts non-increasing by size). A frame that breaks one can still pass the checksum; its
readings are kept but carry ``Quality.IMPLAUSIBLE``. Single-value ranges are not checked here:
they are declared on ``MetricSpec`` (``valid_min``/``valid_max``) and applied by the processing
stage for every driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent.model import MetricSpec, Quality, Sample

IMPLAUSIBLE = int(Quality.IMPLAUSIBLE)


@dataclass(frozen=True, slots=True)
class NonDecreasing:
    """The named metrics, in this order, never decrease within one frame (``a <= b <= c``)."""

    metrics: tuple[str, ...]

    def __init__(self, *metrics: str):
        if len(metrics) < 2:
            raise ValueError("a NonDecreasing rule needs at least two metrics")
        object.__setattr__(self, "metrics", metrics)

    def broken(self, values: Mapping[str, float]) -> bool:
        got = [values[m] for m in self.metrics if m in values]
        return any(a > b for a, b in zip(got, got[1:], strict=False))


def implausible(values: Mapping[str, float], rules: Iterable[NonDecreasing]) -> set[str]:
    """Names of the metrics in a broken rule; the frame cannot say which value is the wrong one."""
    bad: set[str] = set()
    for rule in rules:
        if rule.broken(values):
            bad.update(rule.metrics)
    return bad


def frame_samples(metrics: Sequence[MetricSpec], values: Mapping[str, float],
                  rules: Iterable[NonDecreasing] = (), quality: int = 0) -> list[Sample]:
    """One Sample per metric (in declared order) with ``quality``, plus IMPLAUSIBLE where a rule broke."""
    bad = implausible(values, rules)
    return [Sample(m.name, values[m.name], quality | (IMPLAUSIBLE if m.name in bad else 0)) for m in metrics]
