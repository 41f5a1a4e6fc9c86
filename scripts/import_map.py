"""The package's import map: each module's floor and size, what it imports from the package,
circles, and arrows that run back up.

Run from the repository root: ``python scripts/import_map.py``. Both module-level and
function-local imports count, since a lazy import is still a dependency. Exits 1 on an import
circle, an import of a module on a higher floor, a module on no floor, or when the pure crypto
floor reaches the ORM. docs/architecture.md explains the floors.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "data_encryption"
SKIP = ("tests", "migrations")
# The pure crypto floor, and the ground modules (no package imports) it may lean on.
FLOOR = {"ciphers", "envelope", "master_key"} | {
    f"master_keys{suffix}"
    for suffix in (
        "",
        ".local",
        ".provider",
        ".provider_key",
        ".aws_kms",
        ".aws_kms_errors",
        ".pkcs11",
        ".pkcs11_tokens",
    )
}
GROUND = {"conf", "conf.rules", "conf.settings", "exceptions"}

# From the ground up (DESIGN §7). A module may import modules on its own floor or below; a name
# ending in "." stands for every module under that package.
FLOORS: list[tuple[str, set[str]]] = [
    ("ground", {"__init__", "exceptions", "conf", "conf.", "signals", "ciphers"}),
    ("crypto", {"envelope", "master_key", "master_keys", "master_keys."}),
    ("tables", {"models"}),
    ("key store", {"keys", "key_audit", "missing_keys", "index_keys"}),
    ("values", {"encryptor", "payloads", "legacy", "legacy.", "blind_index", "blind_index."}),
    ("fields", {"fields", "fields."}),
    ("storage services", {"backups", "backups.", "schedule"}),
    ("rotation", {"rotation", "rotation."}),
    ("alerts", {"notifications"}),
    ("service", {"services"}),
    (
        "doors",
        {"tasks", "admin", "management", "management.", "operations", "operations.", "testing"},
    ),
    ("top", {"checks", "checks.", "apps"}),
]


def floor_of(name: str) -> int | None:
    for number, (_, members) in enumerate(FLOORS):
        if name in members or any(m.endswith(".") and name.startswith(m) for m in members):
            return number
    return None


def upward_arrows(graph: dict[str, set[str]]) -> list[str]:
    faults = []
    for name in sorted(graph):
        here = floor_of(name)
        if here is None:
            faults.append(f"{name} is on no floor: add it to FLOORS")
            continue
        for target in sorted(graph[name]):
            there = floor_of(target)
            if there is not None and there > here:
                faults.append(
                    f"{name} ({FLOORS[here][0]}) imports {target} ({FLOORS[there][0]}), above it"
                )
    return faults


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[0] in SKIP:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts) or "__init__"] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(package modules imported, outside modules imported) by ``name``, anywhere in the file."""
    inside, outside = set(), set()
    is_package = path.name == "__init__.py"
    here = name.split(".") if name != "__init__" else []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_package else here[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                prefix = ".".join([PACKAGE, *base, *(node.module or "").split(".")]).rstrip(".")
            else:
                prefix = node.module or ""
            # ``from . import keys`` names a module; ``from .keys import x`` names the module.
            targets = [f"{prefix}.{alias.name}" for alias in node.names] + [prefix]
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                local = target[len(PACKAGE) + 1 :]
                if local in known and local != name:
                    inside.add(local)
            elif isinstance(node, ast.Import) or target == prefix:
                outside.add(target)
    return inside, outside


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def floor_faults(graph: dict[str, set[str]], outside: dict[str, set[str]]) -> list[str]:
    faults = []
    for name in sorted(FLOOR & graph.keys()):
        reach, todo = set(), [name]
        while todo:
            for succ in graph[todo.pop()]:
                if succ not in reach:
                    reach.add(succ)
                    todo.append(succ)
        above = sorted(reach - FLOOR - GROUND)
        if above:
            faults.append(f"{name} reaches {', '.join(above)}")
        orm = sorted(
            m for m in [name, *reach] for o in outside[m] if o.split(".")[:2] == ["django", "db"]
        )
        if orm:
            faults.append(f"{name} reaches django.db through {', '.join(sorted(set(orm)))}")
    return faults


def main() -> int:
    root = Path(__file__).resolve().parents[1] / PACKAGE
    found = modules(root)
    graph, outside = {}, {}
    for name, path in found.items():
        graph[name], outside[name] = imports(name, path, set(found))
    for name, path in found.items():
        lines = len(path.read_text("utf-8").splitlines())
        floor = floor_of(name)
        label = FLOORS[floor][0] if floor is not None else "?"
        print(f"{label:>16} {lines:5} {name}: {', '.join(sorted(graph[name])) or '-'}")
    circles = cycles(graph)
    faults = floor_faults(graph, outside)
    print(f"\ncircles: {len(circles)}")
    for circle in circles:
        print("  " + " <-> ".join(circle))
    print(f"crypto floor ({', '.join(sorted(FLOOR))}) faults: {len(faults)}")
    for fault in faults:
        print("  " + fault)
    upward = upward_arrows(graph)
    print(f"arrows that run back up: {len(upward)}")
    for fault in upward:
        print("  " + fault)
    return 1 if circles or faults or upward else 0


if __name__ == "__main__":
    sys.exit(main())
