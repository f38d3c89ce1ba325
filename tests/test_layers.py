"""The layers point one way: transport (app, web, realtime) -> GraphQL layer (schema,
resolvers, dataloaders) -> domain -> infrastructure. A module may import its own layer
and the layers below, never one above: imports inside functions and under
TYPE_CHECKING count too (a cycle hidden there is still a cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

from infra.settings import ROOT

LAYERS = {
    "commands": 4,  # developer commands and migrations sit on top of everything
    "migrations": 4,
    "app": 3,
    "web": 3,
    "realtime": 3,
    "schema": 2,
    "resolvers": 2,
    "dataloaders": 2,
    "domain": 1,
    "infra": 0,
}
NAMES = {3: "transport", 2: "GraphQL layer", 1: "domain", 0: "infrastructure", 4: "commands"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_module_imports_a_layer_above_its_own() -> None:
    wrong = []
    for package, layer in LAYERS.items():
        paths = [ROOT / "app.py"] if package == "app" else (ROOT / package).rglob("*.py")
        for path in paths:
            for name in imports(path):
                target = LAYERS.get(name.split(".")[0])
                if target is not None and target > layer:
                    wrong.append(
                        f"{path.relative_to(ROOT)} ({NAMES[layer]}) imports {name}"
                        f" ({NAMES[target]})"
                    )
    assert not wrong, "\n".join(sorted(wrong))


def test_the_layers_cover_every_package_of_ours() -> None:
    ours = {
        p.name
        for p in ROOT.iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and p.name not in ("tests", "bench")
    }
    assert ours <= set(LAYERS), ours - set(LAYERS)
    loose = {p.stem for p in ROOT.glob("*.py")}
    assert loose == {"app"}, f"modules outside a package: {loose - {'app'}}"
