"""Decode every value of one Modbus block read at once with numpy (one gather and one view per data
type and word order), instead of one Python call per value. Same results as
:func:`agent.contract.modbus_values.decode` followed by ``float(raw) * scale + offset``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .modbus_values import DataType, WordOrder, register_count

_DTYPES: dict[DataType, str] = {
    DataType.INT16: ">i2", DataType.UINT16: ">u2", DataType.BITFIELD: ">u2", DataType.INT32: ">i4",
    DataType.UINT32: ">u4", DataType.FLOAT32: ">f4", DataType.INT64: ">i8", DataType.UINT64: ">u8",
    DataType.FLOAT64: ">f8",
}


@dataclass(frozen=True, slots=True)
class BlockValue:
    """One value in a block: ``offset`` registers from the block's start; ``key`` is where it goes."""

    key: int
    offset: int
    type: DataType = DataType.FLOAT32
    order: WordOrder = WordOrder.ABCD
    scale: float = 1.0
    add: float = 0.0


def _byte_index(offset: int, dtype: DataType, order: WordOrder) -> list[int]:
    """Where each byte of the big-endian value sits in the block's bytes (big-endian words)."""
    n = register_count(dtype)
    byte_swap = order in (WordOrder.BADC, WordOrder.DCBA)
    word_rev = order in (WordOrder.CDAB, WordOrder.DCBA)
    out = []
    for p in range(n):
        word = offset + (n - 1 - p if word_rev else p)
        out += [2 * word + (1 - b if byte_swap else b) for b in (0, 1)]
    return out


class BlockDecoder:
    """Precomputed decoding of the values in one block of registers."""

    def __init__(self, values: Sequence[BlockValue]):
        groups: dict[tuple[DataType, WordOrder], list[BlockValue]] = {}
        for v in values:
            groups.setdefault((DataType(v.type), WordOrder(v.order)), []).append(v)
        self._groups = []
        for (dtype, order), vs in groups.items():
            index = np.array([_byte_index(v.offset, dtype, order) for v in vs], np.intp).ravel()
            keys = np.array([v.key for v in vs], np.intp)
            scale = np.array([v.scale for v in vs])
            add = np.array([v.add for v in vs])
            plain = bool((scale == 1.0).all() and (add == 0.0).all())
            self._groups.append((index, np.dtype(_DTYPES[dtype]), keys, None if plain else (scale, add)))
        self.registers = max((v.offset + register_count(v.type) for v in values), default=0)
        # the common block (a meter's: one type, big-endian words in order, each value on a boundary of
        # its own size, no scaling): a view of the bytes as that type and one gather of whole values
        self._aligned: tuple[np.dtype, np.ndarray, np.ndarray | slice] | None = None
        if len(groups) == 1 and self._groups[0][3] is None:
            (dtype, order), vs = next(iter(groups.items()))
            n = register_count(dtype)
            if all(_byte_index(v.offset, dtype, order) == list(range(2 * v.offset, 2 * v.offset + 2 * n))
                   and v.offset % n == 0 for v in vs):
                keys = self._groups[0][2]
                self._aligned = (np.dtype(_DTYPES[dtype]), np.array([v.offset // n for v in vs], np.intp),
                                 slice(0, len(keys)) if (keys == np.arange(len(keys))).all() else keys)

    def decode_into(self, regs: Sequence[int] | bytes, out: np.ndarray) -> None:
        """Write every value (as float64, scaled) into ``out[key]``. ``regs`` are register values or
        the block's bytes as read (big-endian, 2 per register: no Python int per register).
        ValueError when the block is short or a register is not a 16-bit unsigned value."""
        n = len(regs) // 2 if isinstance(regs, bytes) else len(regs)
        if n < self.registers:
            raise ValueError(f"block of {n} registers, {self.registers} needed")
        if self._aligned is not None and isinstance(regs, bytes):
            dtype, at, keys = self._aligned
            raw = np.frombuffer(regs, dtype, len(regs) // dtype.itemsize)[at]  # (no arithmetic: nothing signals)
            with np.errstate(invalid="ignore"):  # a signalling NaN from the device stays a NaN
                out[keys] = raw
            return
        if isinstance(regs, bytes):
            data = np.frombuffer(regs, np.uint8)
        else:
            try:
                data = np.array(regs, dtype=">u2").view(np.uint8)  # Python ints out of 0..65535 raise
            except (OverflowError, TypeError, ValueError):
                raise ValueError("a register value is not a 16-bit unsigned integer") from None
        with np.errstate(invalid="ignore"):  # a signalling NaN from the device stays a NaN
            for index, dtype, keys, scaling in self._groups:
                raw = data[index].view(dtype).astype(np.float64)
                if scaling is not None:
                    raw = raw * scaling[0] + scaling[1]
                out[keys] = raw


__all__ = ["BlockDecoder", "BlockValue"]
