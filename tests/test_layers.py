"""Layers import only downward (DESIGN.md): pci < host < virt < store < ... < cli."""

import ast
from pathlib import Path

ORDER = ["pci", "host", "virt", "store", "scheduler", "compute", "api", "agent", "cli"]
PACKAGE = Path(__file__).resolve().parent.parent / "pcifleet"


def imported_layers(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "pcifleet" and len(parts) > 1 and parts[1] in ORDER:
                found.add(parts[1])
    return found


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = []
    for layer in ORDER:
        for path in (PACKAGE / layer).rglob("*.py"):
            for target in imported_layers(path):
                if ORDER.index(target) > ORDER.index(layer):
                    upward.append(f"{path.relative_to(PACKAGE)} imports pcifleet.{target}")
    assert upward == []


def test_the_check_sees_imports() -> None:
    assert "pci" in imported_layers(PACKAGE / "host" / "sysfs.py")


def test_no_route_module_imports_another() -> None:
    """A handler parses, authorizes, calls compute or store and serializes: what
    routes share lives below them (compute, api.deps, api.paths...)."""
    routes = PACKAGE / "api" / "routes"
    crossing = []
    for path in routes.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "pcifleet.api.routes"
            ):
                crossing.append(f"{path.name} imports {node.module}")
    assert crossing == []
