"""Print the README's Raspberry Pi install commands for one architecture, one command per line.

    python readme_commands.py README.md arm64|armhf

The commands are the ```sh block of the "Install on a Raspberry Pi" section: for armhf the block
under a sub-heading naming 32-bit (when there is one), otherwise the section's first block. Comment
lines and blank lines are dropped; a line continued with a backslash is joined. Exit 1 with a
message naming what was not found.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SECTION = re.compile(r"^## Install on a Raspberry Pi\s*$")
THIRTY_TWO_BIT = re.compile(r"^###.*\b(32-bit|armhf|armv7)", re.IGNORECASE)


def sh_blocks(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(heading above the block, the block's lines) for every ```sh block in ``lines``."""
    blocks: list[tuple[str, list[str]]] = []
    heading, inside, current = "", False, []
    for line in lines:
        if not inside and line.startswith("#"):
            heading = line
        elif not inside and line.strip() in ("```sh", "```bash", "```shell"):
            inside, current = True, []
        elif inside and line.strip() == "```":
            blocks.append((heading, current))
            inside = False
        elif inside:
            current.append(line)
    return blocks


def commands(readme: str, arch: str) -> list[str]:
    lines = readme.splitlines()
    start = next((i for i, line in enumerate(lines) if SECTION.match(line)), None)
    if start is None:
        raise LookupError("no '## Install on a Raspberry Pi' section")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    blocks = sh_blocks(lines[start + 1 : end])
    if not blocks:
        raise LookupError("no ```sh block in the 'Install on a Raspberry Pi' section")
    block = blocks[0][1]
    if arch == "armhf":
        block = next((b for h, b in blocks if THIRTY_TWO_BIT.match(h)), block)
    out: list[str] = []
    pending = ""
    for raw in block:
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line and not line.startswith("#"):
            out.append(line)
    return out


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[2] not in ("arm64", "armhf"):
        print("usage: readme_commands.py README.md arm64|armhf", file=sys.stderr)
        return 2
    try:
        cmds = commands(Path(sys.argv[1]).read_text(encoding="utf-8"), sys.argv[2])
    except (OSError, LookupError) as e:
        print(f"readme_commands: {sys.argv[1]}: {e}", file=sys.stderr)
        return 1
    print("\n".join(cmds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
