"""Block reads (DL/T 645-2007, DI1 = FF): one request for all phases, or a total and its tariffs.

``0201FF00`` returns the three phase voltages, ``0203FF00`` total and phase powers, ``0001FF00``
forward active energy total and tariffs 1…n, concatenated in DI1 order. Meters that do not support
a block answer "no such data" (or nothing useful); the driver then reads those identifiers one by
one from then on.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.contract import ProtocolError

from .codec import Fmt
from .profiles import Item

BLOCK = 0xFF


class BlockMismatch(ProtocolError):
    """A block reply that does not hold the values asked for."""


def block_of(di: int) -> tuple[int, int] | None:
    """(block identifier, DI1 of its first value) when ``di`` belongs to a DI1 block, else None."""
    di3, di2, di1, di0 = di >> 24 & 0xFF, di >> 16 & 0xFF, di >> 8 & 0xFF, di & 0xFF
    block = (di & 0xFFFF00FF) | BLOCK << 8
    if di3 == 0x00 and di0 == 0x00 and di1 <= 0x3F:  # energy: total, then tariffs 1..63
        return block, 0
    if di3 == 0x02 and di0 == 0x00 and di2 in (0x01, 0x02) and 1 <= di1 <= 3:  # voltage, current: phases A-C
        return block, 1
    if di3 == 0x02 and di0 == 0x00 and di2 in (0x03, 0x04, 0x05, 0x06) and di1 <= 3:  # P, Q, S, PF: total, A-C
        return block, 0
    return None


Block = tuple[int, int]  # (block identifier, DI1 of its first value)


def plan(items: Sequence[Item]) -> list[tuple[Block | None, list[Item]]]:
    """Group the 2007 identifiers of ``items`` by block (two or more in one block share a request);
    the rest as single reads, in the order given."""
    groups: dict[Block, list[Item]] = {}
    order: list[Block | Item] = []
    for item in items:
        b = block_of(item.di2007) if item.di2007 is not None else None
        if b is None:
            order.append(item)
            continue
        if b not in groups:
            groups[b] = []
            order.append(b)
        groups[b].append(item)
    out: list[tuple[Block | None, list[Item]]] = []
    for key in order:
        if isinstance(key, tuple):
            group = groups[key]
            out.append((key, group) if len(group) > 1 else (None, group))
        else:
            out.append((None, [key]))
    return out


def split(data: bytes, block: Block, items: Sequence[Item]) -> dict[str, float]:
    """The values of ``items`` out of a block reply; ProtocolError when the reply does not fit."""
    di_block, first = block
    fmt: Fmt | None = items[0].fmt2007
    assert fmt is not None
    if len(data) % fmt.size:
        raise BlockMismatch(f"block {di_block:08X} reply of {len(data)} bytes is not whole {fmt.size}-byte values")
    out = {}
    for item in items:
        assert item.di2007 is not None
        i = (item.di2007 >> 8 & 0xFF) - first
        if (i + 1) * fmt.size > len(data):
            raise BlockMismatch(f"block {di_block:08X} reply holds {len(data) // fmt.size} values, "
                                f"{item.metric} is value {i + 1}")
        out[item.metric] = fmt.decode(data[i * fmt.size:(i + 1) * fmt.size])
    return out
