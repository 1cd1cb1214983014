"""The package's layers: utils is the ground floor, and no import cycle anywhere in ppgan/."""
import ast
import os
import subprocess
import sys
from typing import Dict, Iterator, List, Optional, Set

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
ABOVE_UTILS = {"ppgan.models", "ppgan.faceutils", "ppgan.metrics", "ppgan.datasets",
               "ppgan.engine", "ppgan.apps"}


def test_utils_imports_nothing_above_it():
    code = ("import importlib, pkgutil, sys, ppgan.utils\n"
            "for info in pkgutil.iter_modules(ppgan.utils.__path__, 'ppgan.utils.'):\n"
            "    importlib.import_module(info.name)\n"
            "print(' '.join(sys.modules))")
    # A fresh interpreter: this one has imported everything already. `-c` puts cwd on the path.
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    above = sorted(name for name in proc.stdout.split() if _top(name) in ABOVE_UTILS)
    assert not above, f"importing ppgan.utils imports {above}"
    # Imports inside functions count too, though only running them would show in sys.modules.
    graph = import_graph()
    lazy = sorted(f"{module} -> {name}" for module, names in graph.items() for name in names
                  if _top(module) == "ppgan.utils" and _top(name) in ABOVE_UTILS)
    assert not lazy, f"ppgan.utils imports from above it: {lazy}"


def _top(module: str) -> str:
    """'ppgan.models.generators.wav2lip' -> 'ppgan.models'."""
    return ".".join(module.split(".")[:2])


def _modules() -> Dict[str, str]:
    """{dotted name: file} for every module under ppgan/, a package named by its __init__.py."""
    modules = {}
    for folder, _, files in os.walk(os.path.join(REPO, "ppgan")):
        for file in files:
            if file.endswith(".py"):
                parts = os.path.relpath(os.path.join(folder, file[:-3]), REPO).split(os.sep)
                modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = \
                    os.path.join(folder, file)
    return modules


def _named_imports(module: str, path: str, modules: Dict[str, str]) -> Iterator[str]:
    """The modules that `module`'s import statements name, those inside functions included."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if _type_checking_only(node):
            node.body = []  # imports under `if TYPE_CHECKING:` never run
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + [base] * bool(base))
            for alias in node.names:  # `from base import x`: the submodule x, else a name of base
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and \
        node.test.id == "TYPE_CHECKING"


def _executed(target: str, importer: str) -> List[str]:
    """What importing `target` runs: its packages' __init__ first, then itself; except the
    packages `importer` lives in, which Python imported before running `importer`."""
    parts, own = target.split("."), importer.split(".")
    running = {".".join(own[:i]) for i in range(1, len(own) + 1)}
    chain = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return [name for name in chain if name not in running or name == target != importer]


def import_graph() -> Dict[str, Set[str]]:
    modules = _modules()
    return {module: {name for target in _named_imports(module, path, modules)
                     for name in _executed(target, module) if name in modules}
            for module, path in modules.items()}


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One import cycle as [a, b, ..., a], or None (depth-first search)."""
    done: Set[str] = set()
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for successor in sorted(graph[node]):
            cycle = visit(successor)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    return next(filter(None, map(visit, sorted(graph))), None)


def test_no_import_cycle_in_ppgan():
    graph = import_graph()
    # The walker sees real edges: a relative import in a package's __init__, and the package
    # __init__ that Python runs before a submodule (trainer imports ppgan.models.base_model).
    assert "ppgan.models.generators.wav2lip" in graph["ppgan.models.generators"]
    assert "ppgan.models" in graph["ppgan.engine.trainer"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"b"}}) == ["b", "c", "b"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
