"""The house's layering: no import circle in the package, and its own modules imported at the top."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pyro_vae"
# imported inside functions on purpose: audio pulls in torchaudio (heavy, and only spectrograms need it); the
# CLI keeps the commands' own modules off `--help`
LAZY = {"pyro_vae.audio"}
LAZY_IMPORTERS = "pyro_vae.cli"  # the CLI's package and its command modules


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """The package modules ``path`` imports, each with whether the import is at the top of the file."""
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or not (node.level or (node.module or "").startswith("pyro_vae")):
            continue
        base = package
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        full = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
        for alias in node.names:
            target = f"{full}.{alias.name}" if f"{full}.{alias.name}" in modules else full
            if target in modules and target != here:
                found.append((target, id(node) in top))
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): {target for target, _ in imports(p)} for p in PACKAGE.rglob("*.py")}


def test_the_package_has_no_import_circle():
    edges = graph()
    assert "pyro_vae.parts" in edges["pyro_vae.spec"] and "pyro_vae.priors" in edges["pyro_vae.parts"]  # it reads
    state, circles = {}, []

    def visit(module, path):
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                circles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_the_package_imports_its_own_modules_at_the_top():
    inside = {
        (module_name(path), target)
        for path in PACKAGE.rglob("*.py")
        for target, at_top in imports(path)
        if not at_top and not module_name(path).startswith(LAZY_IMPORTERS) and target not in LAZY
    }
    assert inside == set()
