"""What the demo shows: a live view sized to the terminal, or one plain line at a time without a TTY."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

EVENT_LINES = 6
VALUE_SEP = "  "


@dataclass
class DeviceRow:
    name: str
    state: str  # starting | up | down | stale | unavailable
    polls: int
    values: list[str] = field(default_factory=list)  # "metric value unit", as received upstream
    note: str = ""  # why a device is unavailable


@dataclass
class Snapshot:
    elapsed: float
    phase: str
    link_up: bool
    uplink_connected: bool
    outbox_depth: int
    readings_per_s: float
    upstream_readings: int
    max_seq: int
    missing_seqs: int  # seqs below the highest one received that have not arrived (yet)
    duplicates: int
    devices: list[DeviceRow]
    events: list[str]

    @property
    def devices_heard(self) -> int:
        return sum(1 for d in self.devices if d.values)


def plain_line(s: Snapshot) -> str:
    """One line for logs and pipes."""
    states = [d.state for d in s.devices]
    return (f"t+{s.elapsed:3.0f}s  link {'up' if s.link_up else 'DOWN'}  "
            f"uplink {'connected' if s.uplink_connected else 'reconnecting'}  outbox {s.outbox_depth} msgs  "
            f"devices {states.count('up')}/{len(states)} up  upstream {s.upstream_readings} readings from "
            f"{s.devices_heard}/{len(states)} devices, seq 1..{s.max_seq} missing {s.missing_seqs}, "
            f"dups {s.duplicates}")


def pack(items: list[str], width: int, max_lines: int) -> str:
    """Pack ``items`` into at most ``max_lines`` lines of ``width`` characters; what does not fit is
    summarised as "… +N" so a device never takes more than its share of the screen."""
    lines: list[list[str]] = []
    for item in items:
        if lines and len(VALUE_SEP.join([*lines[-1], item])) <= width:
            lines[-1].append(item)
        else:
            lines.append([item])
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while True:
            more = f"… +{len(items) - sum(map(len, lines))}"
            if len(VALUE_SEP.join([*last, more])) <= width or len(last) == 1:
                last.append(more)
                break
            last.pop()
    return "\n".join(VALUE_SEP.join(line) for line in lines)


STATE_STYLE = {"up": "green", "down": "red", "stale": "red", "starting": "yellow", "unavailable": "magenta"}


def render(s: Snapshot, width: int, height: int):
    """The live view, fitted to ``width`` x ``height``: every device gets at least one line."""
    from rich import box
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    head = Text.assemble(
        (f"t+{s.elapsed:3.0f}s", "bold"), "  link ", ("up", "green") if s.link_up else ("DOWN", "bold red"),
        "  uplink ", ("connected", "green") if s.uplink_connected else ("reconnecting", "yellow"),
        "  outbox ", (str(s.outbox_depth), "bold"), " msgs",
        f"  publish {s.readings_per_s:.0f} readings/s",
        f"  upstream {s.upstream_readings} readings, seq 1..{s.max_seq} missing {s.missing_seqs}, dups {s.duplicates}",
    )
    head_lines = 2 + math.ceil(len(head.plain) / max(10, width - 4))
    events = s.events[-EVENT_LINES:]
    n = max(1, len(s.devices))
    chrome = 3  # table header, its rule, and a spare line
    room = height - head_lines - chrome - (2 + max(1, len(events)))
    if room < n:  # a small terminal: fewer events before fewer devices
        events = events[-max(1, len(events) - (n - room)):]
        room = height - head_lines - chrome - (2 + max(1, len(events)))
    per_device = max(1, room // n)
    name_w = max([6] + [len(d.name) for d in s.devices])
    values_w = max(16, width - name_w - 11 - 6 - 9)  # 9: the padding between four columns

    table = Table(box=box.SIMPLE_HEAD, expand=True, show_edge=False, pad_edge=False)
    table.add_column("device", no_wrap=True, width=name_w)
    table.add_column("state", no_wrap=True, width=11)
    table.add_column("polls", no_wrap=True, justify="right", width=6)
    table.add_column("latest values upstream", no_wrap=True, overflow="ellipsis", ratio=1)
    for d in s.devices:
        text = d.note if d.state == "unavailable" else pack(d.values, values_w, per_device)
        table.add_row(d.name, Text(d.state, STATE_STYLE.get(d.state, "")), str(d.polls), text)
    ev = Group(*[Text(e, no_wrap=True, overflow="ellipsis") for e in events]) if events else Text("none yet", "dim")
    return Group(Panel(head, title=f"edge-agent demo — {s.phase}", title_align="left"), table,
                 Panel(ev, title="events", title_align="left"))
