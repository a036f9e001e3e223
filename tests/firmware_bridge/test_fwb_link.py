"""Link state machine properties under any delivery order, duplication, loss and commit timing."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from firmware_bridge import codec as c
from firmware_bridge.link import Description, NodeLink

DESC = Description(c.Hello(1, 7, 1000, 32, 1, "t"), (c.Metric(0, 0, 0, "x", ""),))
BOOT = 7

events = st.lists(st.one_of(
    st.tuples(st.just("data"), st.integers(1, 8)),  # a (re)transmission of reading seq
    st.tuples(st.just("commit"), st.none()),
    st.tuples(st.just("take"), st.none()),
    st.tuples(st.just("restart"), st.none()),  # the gateway restarts from its saved state
    st.tuples(st.just("status"), st.integers(1, 9)),  # TIME_RESP: the node's oldest held seq
), max_size=120)


def new_link(saved=None) -> NodeLink:
    link = NodeLink(description=DESC, **(saved or {}))
    link.receive(c.encode(c.TimeReq(0)), 0.0)  # ignored: a gateway-to-node type
    link._time_req = {1: (0.0, 1e12)}
    link.receive(c.encode(c.TimeResp(1, BOOT, 100, 1, 0)), 0.001)  # after every reading's node_ms
    return link


@settings(max_examples=400, deadline=None)
@given(events)
# a committed reading above a gap, a crash, the reading again: it must not be committed twice
@example([("data", 3), ("take", None), ("commit", None), ("restart", None), ("data", 3), ("take", None),
          ("commit", None)])
def test_each_reading_reaches_the_pipeline_once_and_the_floor_never_passes_an_uncommitted_one(evs):
    link = new_link()
    clock = 1.0
    handed: list[int] = []
    commits: dict[int, int] = {}
    committed: set[int] = set()
    given_up: set[int] = set()
    pending: list[tuple[int, float]] = []  # handed to the pipeline, not yet committed
    saved = {"boot_id": BOOT, "floor": 0, "committed": ()}
    for kind, arg in evs:
        clock += 0.01
        if kind == "data":
            link.receive(c.encode(c.Data(BOOT, arg, arg * 10, ((0, arg),))), clock)
        elif kind == "take":
            for r in link.take_readings(clock):
                handed.append(r.seq)
                pending.append((r.seq, clock))
        elif kind == "commit":
            for s, _ in pending:
                commits[s] = commits.get(s, 0) + 1
            committed |= {s for s, _ in pending}
            pending.clear()
            link.committed_through(clock + 0.001)
            st_ = link.current
            saved = {"boot_id": BOOT, "floor": st_.floor, "committed": tuple(sorted(st_.committed))}
        elif kind == "status":
            link._time_req = {2: (clock, 1e12)}
            link.receive(c.encode(c.TimeResp(2, BOOT, 100 + int(clock * 1000), arg, 0)), clock + 0.001)
            given_up |= set(range(1, arg))
        else:  # crash: what was handed but not committed is lost with the gateway
            pending.clear()
            link = new_link(saved)
        floor = link.current.floor
        assert all(s in committed or s in given_up for s in range(1, floor + 1))
    # exactly once: no reading is committed twice, whatever the order, copies and crashes
    assert all(n == 1 for n in commits.values()), commits
    # and a reading handed out twice was lost in a crash (never committed) the first time
    assert all(handed.count(s) == 1 or commits.get(s, 0) <= 1 for s in set(handed))


def test_data_of_many_unknown_boots_never_evicts_the_current_boot():
    link = new_link()
    for boot in range(100, 110):  # CRC-valid DATA of boots the node never announced
        link.receive(c.encode(c.Data(boot, 1, 50, ((0, 1),))), 0.5)
    assert link.current is link.boots[BOOT] and not set(range(100, 110)) & set(link.boots)
    link._time_req = {9: (0.6, 1e12 + 600)}
    link.receive(c.encode(c.TimeResp(9, BOOT, 700, 1, 0)), 0.601)  # the node names its boot
    link.receive(c.encode(c.Data(BOOT, 1, 650, ((0, 7),))), 0.602)
    assert [r.seq for r in link.take_readings(0.7)] == [1]
    assert link.counters["unknown_boot_frames"] == 10 and not link._unknown
