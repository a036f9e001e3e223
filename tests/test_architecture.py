"""No import cycle between the top-level areas of the agent (``agent.config``, ``agent.site``, ...).

The import graph comes from grimp and counts every import, including those inside functions and
under ``TYPE_CHECKING``. Each module is collapsed to its area (the first two dotted parts).
"""

from __future__ import annotations

from collections import defaultdict

import grimp
import pytest


def area(module: str) -> str:
    return ".".join(module.split(".")[:2])


def area_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], list[str]]]:
    graph = grimp.build_graph("agent", cache_dir=None)
    edges: dict[str, set[str]] = defaultdict(set)
    why: dict[tuple[str, str], list[str]] = defaultdict(list)
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            a, b = area(importer), area(imported)
            if a != b:
                edges[a].add(b)
                why[(a, b)].append(f"{importer} -> {imported}")
    return edges, why


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of areas (first area repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_no_import_cycle_between_areas():
    edges, why = area_graph()
    cycle = find_cycle(edges)
    if cycle:
        steps = [f"  {a} -> {b}: {', '.join(why[(a, b)])}" for a, b in zip(cycle, cycle[1:], strict=False)]
        pytest.fail("import cycle between areas: " + " -> ".join(cycle) + "\n" + "\n".join(steps))


def test_config_imports_no_feature():
    """The config package defines the core sections; features register theirs (agent.sections)."""
    edges, why = area_graph()
    features = {"agent.site", "agent.commands", "agent.processing", "agent.homeassistant", "agent.metrics",
                "agent.uplink", "agent.sections", "agent.app", "agent.web"}
    bad = sorted(edges["agent.config"] & features)
    assert not bad, "\n".join(line for b in bad for line in why[("agent.config", b)])


def test_feature_section_models_depend_only_on_the_contract():
    """A feature's section model needs the driver contract (Frozen, Name, the charger keys) and
    pydantic, not the config package or another feature."""
    graph = grimp.build_graph("agent", cache_dir=None)
    allowed = ("agent.contract", "agent.hints")
    for module in ("agent.site.config", "agent.commands.config", "agent.homeassistant.config", "agent.metrics.config",
                   "agent.web.config"):
        own = module.rsplit(".", 1)[0]
        bad = sorted(m for m in graph.find_modules_directly_imported_by(module)
                     if not m.startswith(allowed) and not m.startswith(own + "."))
        assert not bad, f"{module} imports {bad}"
