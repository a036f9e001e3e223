"""Hypothesis strategies for firmware bridge messages (every field over its whole range)."""

from __future__ import annotations

from hypothesis import strategies as st

from firmware_bridge import codec as c

u8, u16, u32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF_FFFF)
i8, i32 = st.integers(-128, 127), st.integers(-(1 << 31), (1 << 31) - 1)
text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=c.MAX_STR).filter(
    lambda s: len(s.encode()) <= c.MAX_STR)

messages = st.one_of(
    st.builds(c.Hello, u32, u32, u32, u16, u8, text),
    st.builds(c.Metric, u8, i8, st.sampled_from([int(k) for k in c.Kind]), text, text),
    st.builds(c.Data, u32, u32, u32, st.lists(st.tuples(u8, i32), max_size=c.MAX_VALUES, unique_by=lambda v: v[0]).map(tuple)),
    st.builds(c.Ack, u32, u32),
    st.builds(c.TimeReq, u32),
    st.builds(c.TimeResp, u32, u32, u32, u32, u32),
    st.builds(c.Command, u16, u8, u8, i32),
    st.builds(c.Result, u16, u8, i32),
    st.builds(c.Log, u8, st.text(max_size=60).filter(lambda s: len(s.encode()) <= c.MAX_LOG)),
)
addrs = st.none() | u8
