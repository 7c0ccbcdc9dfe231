"""No import cycle among the modules of either distribution: every module can be read, changed and imported
without pulling in one that needs it back."""

from __future__ import annotations

import tomllib
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]


def _packages() -> list[str]:
    server = tomllib.loads((REPO / "pyproject.toml").read_text())
    client = tomllib.loads((REPO / "client" / "pyproject.toml").read_text())
    wheels = [server, client]
    listed = [p for w in wheels for p in w["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]]
    return [p.rsplit("/", 1)[-1] for p in listed]


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    modules = graph.modules
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root) & modules)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph.find_modules_directly_imported_by(step) & modules))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    # A guard: on a graph with a known cycle the check below would otherwise pass vacuously.
    graph = grimp.ImportGraph()
    for name in ("a", "a.one", "a.two", "a.three"):
        graph.add_module(name)
    graph.add_import(importer="a.one", imported="a.two")
    graph.add_import(importer="a.two", imported="a.three")
    graph.add_import(importer="a.three", imported="a.one")
    assert cycles(graph) == [["a.one", "a.three", "a.two"]]


def test_no_module_takes_part_in_an_import_cycle() -> None:
    graph = grimp.build_graph(*_packages(), cache_dir=None)
    assert {"handlers.jobs.stop", "gxwf.cli", "gxwf_client.cli.commands"} <= graph.modules
    assert cycles(graph) == []
