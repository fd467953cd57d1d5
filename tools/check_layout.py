"""Checks the package's layout: no import cycle between its modules (imports inside functions
included), imports flowing down the layers only, and no module over 900 lines.

    python tools/check_layout.py          # exit 1 and one line per problem, if any

The import graph comes from grimp (import-linter's engine), which reads every import statement of
every module, those inside functions too. The layers are the same as in the import-linter contract
in pyproject.toml ([tool.importlinter]), which CI also runs as `lint-imports`.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "exactverify"
MAX_LINES = 900
# top to bottom: a module may import from its own layer's package and from the layers below it
LAYERS = ["cli", "api", "training", "metrics", "search", "solvers", "encodings", "bounds", "loaders", "core"]
BASE = {"exactverify._version"}  # leaves that every layer may read


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def import_graph():
    import grimp
    return grimp.build_graph(PACKAGE, include_external_packages=False)


def cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter[0]
                counter[0] += 1
                stack.append(v)
                on_stack.add(v)
            recurse = False
            for k in range(i, len(edges[v])):
                w = edges[v][k]
                if w not in index:
                    work.append((v, k + 1))
                    work.append((w, 0))
                    recurse = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


def layer_violations(graph) -> list[str]:
    bad = []
    for m in sorted(graph.modules):
        lm = layer_of(m)
        for imported in sorted(graph.find_modules_directly_imported_by(m)):
            if imported in BASE:
                continue
            li = layer_of(imported)
            if lm is None:
                continue  # the package root and testing.py sit outside the layers
            if li is None:
                bad.append(f"{m} imports {imported}, which belongs to no layer")
            elif li < lm:
                bad.append(f"{m} ({LAYERS[lm]}) imports {imported} ({LAYERS[li]}), a layer above it")
    return bad


def long_modules(root: Path) -> list[str]:
    out = []
    for p in sorted((root / PACKAGE).rglob("*.py")):
        n = sum(1 for _ in p.open())
        if n > MAX_LINES:
            out.append(f"{p.relative_to(root)} has {n} lines (at most {MAX_LINES})")
    return out


def problems(root: Path | None = None) -> list[str]:
    root = root or Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    graph = import_graph()
    out = [f"import cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    out += layer_violations(graph)
    out += long_modules(root)
    return out


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    if not found:
        print("layout ok: no import cycle, imports flow down the layers, no module over "
              f"{MAX_LINES} lines")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
