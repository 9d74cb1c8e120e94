"""python scripts/check_layout.py: the house rules that `make lint` checks beside the import
contract (lint-imports): no import cycle among the package's modules, lazy imports inside
functions included, and no library module over MAX_LINES lines. Prints what it measured."""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

MAX_LINES = 400
PACKAGE = Path(__file__).resolve().parents[1] / "src" / "gan_stylizer"


def cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def main() -> int:
    graph = grimp.build_graph("gan_stylizer")
    found = cycles(graph)
    for component in found:
        print("import cycle: " + " <-> ".join(component))
    sizes = sorted(
        ((len(p.read_text(encoding="utf-8").splitlines()), p) for p in PACKAGE.rglob("*.py")),
        reverse=True,
    )
    big = [(n, p) for n, p in sizes if n > MAX_LINES]
    for n, p in big:
        print(f"{p.relative_to(PACKAGE.parent)}: {n} lines (more than {MAX_LINES})")
    total = sum(n for n, _ in sizes)
    largest = ", ".join(f"{p.relative_to(PACKAGE)} {n}" for n, p in sizes[:3])
    print(
        f"{len(graph.modules)} modules, {total} library lines, {len(found)} import cycles; "
        f"largest: {largest}"
    )
    return 1 if found or big else 0


if __name__ == "__main__":
    sys.exit(main())
