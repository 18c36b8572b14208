"""The package's layers import downward only (ARCHITECTURE.md): no import cycle, and no module
imports one of a higher layer, at module level or inside a function."""
from __future__ import annotations

import ast
from pathlib import Path

import autograd_cnn

PACKAGE = Path(autograd_cnn.__file__).parent

# Lowest first. A module may import its own layer and the layers below it; optional
# third-party packages (CuPy, matplotlib, tqdm, onnx, mpi4py) are not part of the package.
LAYERS = [
    ("base", ("errors", "checks", "hooks", "backends", "random")),
    ("tensor", ("tensor", "creation")),
    ("engine", ("autograd", "engine")),
    ("ops", ("ops", "testing", "serialization")),
    ("functional", ("functional",)),
    ("nn", ("nn", "optim", "data", "loader", "given", "distributed", "metrics", "transforms")),
    ("above nn", ("models", "visual", "onnx", "onnx_emitters", "interop")),
    ("keras", ("keras",)),
    ("command line", ("cli", "cli_files", "__main__", "")),  # "" is the package's own __init__
]


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for rank, (_, names) in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS here and to ARCHITECTURE.md")


def package_modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its body (functions too)."""
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else (node.module or "")
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            # `from . import x` imports the module x; `from .m import name` imports m.
            found.update(subs if len(subs) == len(node.names) else [base, *subs])
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in modules and m != module}


def graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {m: imports(m, p, modules) for m, p in modules.items()}


def test_the_walker_sees_imports_inside_functions_too():
    g = graph()
    assert "autograd_cnn.autograd" in g["autograd_cnn.ops.elementwise"]  # module level
    assert any(m.startswith("autograd_cnn.models") for m in g["autograd_cnn.cli"])  # inside functions


def test_no_import_cycle():
    g = graph()
    cycles, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for n in sorted(g[m]):
            if state.get(n) == "open":
                cycles.append(" -> ".join(path[path.index(n):] + [n]))
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_layers_import_downward_only():
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {n} ({LAYERS[layer_of(n)][0]})"
              for m, targets in graph().items() for n in sorted(targets) if layer_of(n) > layer_of(m)]
    assert not upward, "\n".join(upward)


def test_no_private_name_crosses_a_module():
    """``from .x import _helper`` ties two files together without saying so: make it public."""
    crossing = []
    for module, path in package_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("autograd_cnn")):
                crossing += [f"{module}: from {'.' * node.level}{node.module or ''} import {a.name}"
                             for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not crossing, "\n".join(crossing)


def engine_private_names() -> set[str]:
    """The underscore names that tensor.py and the engine define: slots, attributes, functions."""
    names = set()
    for path in [PACKAGE / "tensor.py", PACKAGE / "autograd.py", *sorted((PACKAGE / "engine").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                names.add(node.attr)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
                names.add(node.value)  # __slots__ entries
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_no_module_outside_the_engine_reads_its_private_names():
    """The engine's public surface (graph_of, hooks, Tensor's properties) is what others use.
    Tensor._version is the one exception: the API names it, as PyTorch does."""
    private = engine_private_names() - {"_version"}
    assert {"_backend", "_data", "_saved", "_grad_hooks"} <= private  # the walker sees them
    reads = []
    for module, path in package_modules().items():
        if module in ("autograd_cnn.tensor", "autograd_cnn.autograd") or module.startswith("autograd_cnn.engine"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in private and not (
                    isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                reads.append(f"{module}:{node.lineno} reads .{node.attr}")
    assert not reads, "\n".join(reads)
