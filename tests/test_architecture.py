"""The package's shape, read from its source with `ast`: layers, no import cycles, no private names across
modules; and every model class, synthetic corpus and CLI command module of the package registered.

Imports at module level and inside functions both count (a lazy import still couples two modules); relative
imports are resolved, and `from pkg import name` counts as importing `pkg.name` when that is a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "lmbench"


def package_modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name → source file, for every module of `package` under `root`."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def resolve_from(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a `from X import …` statement names (relative levels resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str], int]]:
    """(imported module of the package, names taken from it, line) for every import statement in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found.append((alias.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            source = resolve_from(module, path, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in modules:  # `from pkg import module`
                    found.append((submodule, [], node.lineno))
                elif source in modules:
                    found.append((source, [alias.name], node.lineno))
    return found


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module → the package's modules it imports (anywhere in the file)."""
    modules = package_modules(root, package)
    return {m: {target for target, _, _ in imports_of(m, p, modules) if target != m} for m, p in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, …, a], or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def private_imports(root: Path = ROOT, package: str = PACKAGE) -> list[str]:
    """`file:line: module imports _name from other.module` for every private name taken across modules."""
    modules = package_modules(root, package)
    found = []
    for module, path in modules.items():
        for target, names, line in imports_of(module, path, modules):
            for name in names:
                if name.startswith("_") and not name.startswith("__") and target != module:
                    found.append(f"{path.relative_to(root)}:{line}: {module} imports {name} from {target}")
    return found


# --- the checks themselves ----------------------------------------------------------------------------------


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_imports_another_modules_private_names():
    found = private_imports()
    assert not found, "private names imported across modules:\n" + "\n".join(found)


# Lowest first; lmbench/errors.py, fileio.py, progress.py and registry.py sit below them all.
LAYERS = ("text", "models", "evaluate", "bench", "report", "cli")


def layer_of(module: str) -> int:
    """Index of a module's layer in LAYERS (−1: the foundation modules)."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else -1


def test_layers_import_only_their_own_or_lower_layers():
    facade = {PACKAGE, f"{PACKAGE}.__main__"}  # the public API re-exports, and `python -m lmbench`
    upward = [f"{a} -> {b}" for a, targets in sorted(import_graph().items()) if a not in facade
              for b in sorted(targets) if layer_of(b) > layer_of(a)]
    assert not upward, "imports from a higher layer (see ARCHITECTURE.md):\n" + "\n".join(upward)


def test_every_cli_command_module_is_registered():
    from lmbench.cli import COMMAND_MODULES

    on_disk = {p.stem for p in (ROOT / PACKAGE / "cli").glob("*.py")} - {"__init__", "app"}
    registered = {COMMAND_MODULES.get(name).__name__.rpartition(".")[2] for name in COMMAND_MODULES}
    assert on_disk == registered, f"cli modules not in COMMAND_MODULES: {sorted(on_disk - registered)}"


# --- the checker sees what it must see (a planted cycle, a relative import, `from pkg import module`) --------


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_planted_cycle_through_a_function_level_relative_import_is_found(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/sub/__init__.py": "",
        "pkg/b.py": "from pkg.sub.c import f\n",
        "pkg/sub/c.py": "def f():\n    from ..a import x\n    return x\n",
        "pkg/d.py": "import pkg.a\n",
    })
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.sub.c"] == {"pkg.a"} and graph["pkg.d"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]
    (tmp_path / "pkg/sub/c.py").write_text("def f():\n    return 1\n")
    assert find_cycle(import_graph(tmp_path, "pkg")) is None


def test_a_planted_private_import_is_found(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "_hidden = 1\n__version__ = '1'\n",
        "pkg/b.py": "from .a import __version__\n\ndef g():\n    from pkg.a import _hidden\n    return _hidden\n",
    })
    assert private_imports(tmp_path, "pkg") == [f"{Path('pkg/b.py')}:4: pkg.b imports _hidden from pkg.a"]


@pytest.mark.parametrize(("module", "is_init", "level", "name", "expected"), [
    ("pkg.sub.c", False, 1, "d", "pkg.sub.d"),
    ("pkg.sub.c", False, 2, None, "pkg"),
    ("pkg.sub", True, 1, "d", "pkg.sub.d"),
])
def test_relative_imports_resolve(module, is_init, level, name, expected):
    path = Path("__init__.py" if is_init else "c.py")
    node = ast.ImportFrom(module=name, names=[ast.alias("x")], level=level)
    assert resolve_from(module, path, node) == expected


def _package_objects(subpackage: str) -> list[tuple[str, object]]:
    """(module name, object) for every module-level object of every module under lmbench.<subpackage>."""
    import importlib

    found = []
    for module in package_modules(ROOT, PACKAGE):
        if module.startswith(f"{PACKAGE}.{subpackage}"):
            found += [(module, obj) for obj in vars(importlib.import_module(module)).values()]
    return found


def test_every_model_class_of_the_package_is_registered():
    import inspect

    from lmbench.models.base import Model
    from lmbench.models.registry import MODELS

    classes = {obj for module, obj in _package_objects("models") if inspect.isclass(obj) and issubclass(obj, Model)
               and obj.__module__ == module and obj.name and not inspect.isabstract(obj)}
    missing = sorted(f"{c.__module__}:{c.__name__} ({c.name})" for c in classes
                     if c.name not in MODELS.builtin_names() or MODELS.get(c.name) is not c)
    assert not missing, f"model classes not registered in MODELS (models/registry.py): {missing}"


def test_every_synthetic_generator_is_registered():
    from lmbench.text.synthetic import SYNTHETIC, Generator

    gens = {obj for _, obj in _package_objects("text.synthetic") if isinstance(obj, Generator)}
    missing = sorted(g.name for g in gens if g.name not in SYNTHETIC.builtin_names() or SYNTHETIC.get(g.name) is not g)
    assert not missing, f"synthetic corpora not registered in SYNTHETIC (text/synthetic/__init__.py): {missing}"
