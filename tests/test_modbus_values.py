"""The shared Modbus register codec: round trips, word orders, pymodbus agreement, clear errors."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin

from agent.contract.modbus_values import DataType, WordOrder, decode, encode, register_count

M = ModbusClientMixin
PYMODBUS = {
    DataType.INT16: M.DATATYPE.INT16, DataType.UINT16: M.DATATYPE.UINT16, DataType.INT32: M.DATATYPE.INT32,
    DataType.UINT32: M.DATATYPE.UINT32, DataType.FLOAT32: M.DATATYPE.FLOAT32, DataType.FLOAT64: M.DATATYPE.FLOAT64,
    DataType.INT64: M.DATATYPE.INT64, DataType.UINT64: M.DATATYPE.UINT64,
}


def test_documented_frame_230_2_volts():
    # 01 04 04 43 66 33 34 1B 38 = 230.2 V (Eastron, ABCD)
    assert decode([0x4366, 0x3334], DataType.FLOAT32, WordOrder.ABCD) == pytest.approx(230.2, abs=1e-4)
    assert encode(230.1, "float32", "ABCD") == [17254, 6554]


@pytest.mark.parametrize(
    ("order", "regs"),
    [("ABCD", [0x1122, 0x3344]), ("CDAB", [0x3344, 0x1122]), ("BADC", [0x2211, 0x4433]), ("DCBA", [0x4433, 0x2211])],
)
def test_word_orders_place_bytes_as_named(order, regs):
    assert encode(0x11223344, DataType.UINT32, order) == regs
    assert decode(regs, DataType.UINT32, order) == 0x11223344


def test_register_counts():
    assert [register_count(t) for t in ("int16", "bitfield", "float32", "int32", "float64", "uint64")] == [1, 1, 2, 2, 4, 4]


@given(st.sampled_from(list(DataType)), st.sampled_from(list(WordOrder)), st.data())
def test_round_trip_any_type_and_order(dtype, order, data):
    n = register_count(dtype)
    regs = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=n, max_size=n))
    value = decode(regs, dtype, order)
    if isinstance(value, float) and math.isnan(value):
        return  # NaN payloads are not unique
    assert encode(value, dtype, order) == regs
    assert isinstance(value, float) == (dtype in (DataType.FLOAT32, DataType.FLOAT64))


@given(st.sampled_from(sorted(PYMODBUS)), st.data())
def test_agrees_with_pymodbus_for_big_and_little_word_order(dtype, data):
    n = register_count(dtype)
    regs = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=n, max_size=n))
    ours, theirs = decode(regs, dtype, "ABCD"), M.convert_from_registers(regs, PYMODBUS[dtype])
    assert ours == theirs or (math.isnan(ours) and math.isnan(theirs))
    ours = decode(regs, dtype, "CDAB")
    theirs = M.convert_from_registers(regs, PYMODBUS[dtype], word_order="little")
    assert ours == theirs or (math.isnan(ours) and math.isnan(theirs))


@given(st.floats(width=32, allow_nan=False))
def test_float32_values_survive_exactly(x):
    assert decode(encode(x, "float32"), "float32") == x


def test_bad_input_raises_value_error_naming_the_problem():
    with pytest.raises(ValueError, match="needs 2 register"):
        decode([1], "float32")
    with pytest.raises(ValueError, match="16-bit"):
        decode([70000], "uint16")
    with pytest.raises(ValueError, match="out of range for uint16"):
        encode(70000, "uint16")
    with pytest.raises(ValueError, match="out of range for int16"):
        encode(-40000, "int16")
    with pytest.raises(ValueError, match="not an integer"):
        encode(1.5, "int32")
    with pytest.raises(ValueError, match="float32"):
        encode(1e39, "float32")
    with pytest.raises(ValueError):
        decode([1, 2], "float33")
    assert encode(16.0, "uint16") == [16]
    assert struct.unpack(">d", struct.pack(">d", 1.5))[0] == decode(encode(1.5, "float64", "DCBA"), "float64", "DCBA")


@given(st.data())
def test_block_decoder_matches_the_scalar_codec(data):
    """A driver decodes a whole block read at once; every value equals decode() * scale + offset."""
    import numpy as np

    from agent.contract.modbus_block import BlockDecoder, BlockValue

    regs: list[int] = []
    values = []
    for key in range(data.draw(st.integers(1, 6))):
        dtype = data.draw(st.sampled_from(list(DataType)))
        order = data.draw(st.sampled_from(list(WordOrder)))
        regs += data.draw(st.lists(st.integers(0, 0xFFFF), max_size=2))  # a hole read over
        words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=register_count(dtype), max_size=register_count(dtype)))
        scale, add = data.draw(st.sampled_from([(1.0, 0.0), (0.1, 0.0), (0.001, -40.0)]))
        values.append((BlockValue(key, len(regs), dtype, order, scale, add), words))
        regs += words
    out = np.full(len(values), -1.0)
    BlockDecoder([v for v, _ in values]).decode_into(regs, out)
    for v, words in values:
        want = float(decode(words, v.type, v.order)) * v.scale + v.add
        assert out[v.key] == want or (math.isnan(want) and math.isnan(out[v.key]))


def test_block_decoder_refuses_a_short_block_or_a_bad_register():
    import numpy as np

    from agent.contract.modbus_block import BlockDecoder, BlockValue

    dec = BlockDecoder([BlockValue(0, 2)])  # a float32 at offset 2: needs 4 registers
    with pytest.raises(ValueError, match="3 registers, 4 needed"):
        dec.decode_into([0, 0, 0], np.empty(1))
    with pytest.raises(ValueError, match="16-bit"):
        dec.decode_into([0, 0, 0x10000, 0], np.empty(1))


@given(st.data())
def test_block_decoder_reads_a_meters_block_of_whole_values_bit_for_bit(data):
    """A block of one type in big-endian word order, each value on a boundary of its own size and unscaled
    (a meter's), read as bytes: the same bits as the general gather, NaN, infinities and signalling NaN
    (quietened, without a warning) included; keys in any order, ``out`` longer than the values."""
    import warnings

    import numpy as np

    from agent.contract.modbus_block import BlockDecoder, BlockValue

    dtype = data.draw(st.sampled_from([DataType.FLOAT32, DataType.INT32, DataType.UINT16, DataType.FLOAT64]))
    n = register_count(dtype)
    special = [0x7F80_0001, 0x7FC0_0000, 0xFF80_0000, 0x7F80_0000, 0xFFFF_FFFF, 0]  # sNaN, NaN, -inf, inf...
    slots = [True, *data.draw(st.lists(st.booleans(), max_size=11))]  # a value here, or a hole read over
    regs: list[int] = []
    values = []
    for used in slots:
        words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=n, max_size=n))
        if n == 2 and data.draw(st.booleans()):
            x = data.draw(st.sampled_from(special))
            words = [x >> 16, x & 0xFFFF]
        if used:
            values.append(BlockValue(len(values), len(regs), dtype))
        regs += words
    keys = data.draw(st.permutations(range(len(values))))
    values = [BlockValue(k, v.offset, v.type) for k, v in zip(keys, values, strict=True)]
    dec = BlockDecoder(values)
    assert dec._aligned is not None
    raw = struct.pack(f">{len(regs)}H", *regs)
    out = np.full(len(values) + 2, -1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dec.decode_into(raw, out)
    want = np.full(len(values) + 2, -1.0)
    dec._aligned = None  # the general gather
    dec.decode_into(raw, want)
    assert out.view(np.uint64).tolist() == want.view(np.uint64).tolist()
    for v in values:
        x = float(decode(regs[v.offset:v.offset + n], v.type, v.order))
        assert out[v.key] == x or (math.isnan(x) and math.isnan(out[v.key]))


def test_block_decoder_gathers_values_off_their_own_boundary_or_word_swapped_as_before():
    """A float32 at an odd register, a word-swapped one, a scaled one: the general gather (no aligned view)."""
    from agent.contract.modbus_block import BlockDecoder, BlockValue

    assert BlockDecoder([BlockValue(0, 1)])._aligned is None
    assert BlockDecoder([BlockValue(0, 0, order=WordOrder.CDAB)])._aligned is None
    assert BlockDecoder([BlockValue(0, 0, scale=0.1)])._aligned is None
    assert BlockDecoder([BlockValue(0, 0), BlockValue(1, 2, DataType.INT32)])._aligned is None
    import numpy as np

    regs = [0x4148, 0x0000, 0x0000, 0x4148, 0x0001, 0x0002]  # 12.5 at 0; swapped 12.5 at 2; 65538 at 4
    raw = struct.pack(">6H", *regs)
    cases = [(BlockValue(0, 1), [0x0000, 0x0000]), (BlockValue(0, 2, order=WordOrder.CDAB), [0x0000, 0x4148]),
             (BlockValue(0, 0, scale=0.1, add=1.0), [0x4148, 0x0000]), (BlockValue(0, 4, DataType.INT32), [1, 2])]
    for v, words in cases:
        out = np.zeros(1)
        BlockDecoder([v]).decode_into(raw, out)
        assert out[0] == float(decode(words, v.type, v.order)) * v.scale + v.add
