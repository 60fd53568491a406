"""The folder is the architecture: dependencies point one way, modules stay small.

Read from the source (``ast``), not by importing, so a lazy import inside a
function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "llmsim_nb"

# Layers, lowest first: a package may import only from its own layer or lower
# ones (and never a package of its own layer other than itself, except where
# listed in SAME_LAYER). The order is the data flow of one iteration.
LAYERS = [
    {"_version", "_presets", "config"},
    {"workload", "models"},
    {"parallel"},
    {"scheduler", "engines"},
    {"power"},
    {"graph"},
    {"network"},
    {"results"},
    {"system"},
    {"instance"},
    {"cluster"},
    {"fidelity", "sweeps", "testing"},
    {"cli", "viz"},
]
# Same-layer imports that are part of the design. (The scheduler and the
# engines in particular must not know each other.) The flag-effects check
# reads which engine a hardware preset names, to know what scheduling='auto'
# becomes (vllm-v1 on a GPU, orca elsewhere).
SAME_LAYER: set[tuple[str, str]] = {("config", "_presets")}
# Modules that may import display libraries; core code imports none.
DISPLAY = ("matplotlib", "ipywidgets", "IPython")
MAX_LINES = 400


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (any depth in the file)."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                   for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # annotations only: never imported at run time
            continue
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module:  # "from . import x" imports submodule x, not the package's
                out.add(target)  # other submodules
            for alias in node.names:  # a name may be a submodule
                out.add(f"{target}.{alias.name}")
    return out


def _graph() -> nx.DiGraph:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    for name, path in files.items():
        graph.add_node(name)
        for target in _imports(path):
            if target in files and target != name:
                graph.add_edge(name, target)
    return graph


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(top: str) -> int:
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"package llmsim_nb.{top} is in no layer of tests/test_architecture.py")


def test_no_import_cycle_between_modules():
    cycles = list(nx.simple_cycles(_graph()))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_packages_import_only_downwards():
    bad = []
    for a, b in _graph().edges:
        ta, tb = _top(a), _top(b)
        if not ta or not tb or ta == tb:
            continue
        la, lb = _layer(ta), _layer(tb)
        if lb > la or (lb == la and (ta, tb) not in SAME_LAYER):
            bad.append(f"{a} -> {b}")
    assert not bad, "imports against the data flow:\n" + "\n".join(bad)


def test_the_scheduler_knows_no_hardware_and_engines_know_no_requests():
    graph = _graph()
    for a, b in graph.edges:
        if _top(a) == "scheduler":
            assert _top(b) not in ("engines", "graph", "network", "system"), f"{a} -> {b}"
        if _top(a) == "engines":
            assert _top(b) not in ("scheduler", "workload"), f"{a} -> {b}"


def test_core_code_imports_no_display_library():
    for path in PACKAGE.rglob("*.py"):
        if _top(_module_name(path)) == "viz":
            continue
        for target in _imports(path):
            assert not target.startswith(DISPLAY), f"{_module_name(path)} imports {target}"


def test_modules_stay_small_or_say_why():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES and not any("longer than 400 lines" in line
                                                for line in lines[:30]):
            long.append(f"{path.relative_to(PACKAGE)}: {len(lines)} lines")
    assert not long, ("modules over ~400 lines without a reason at their top "
                      "('... longer than 400 lines because ...'): " + ", ".join(long))


@pytest.mark.parametrize("code, absent", [
    ("import llmsim_nb", ("numpy", "xarray", "pandas", "dask", "onnx", "matplotlib")),
    ("from llmsim_nb.cli.main import _build_parser; _build_parser()",
     ("numpy", "xarray", "pandas", "dask", "onnx", "matplotlib")),
    ("import llmsim_nb.models", ("onnx", "xarray", "matplotlib")),
    ("from llmsim_nb import Simulator; Simulator(); import sys",
     ("onnx", "matplotlib", "dask.array", "distributed", "scipy")),
    ("from llmsim_nb.cli.main import main; main(['run', '--quiet'])",
     ("xarray", "pandas", "dask", "onnx", "matplotlib")),
])
def test_importing_loads_only_what_is_needed(code, absent):
    """Start-up stays fast: ``import llmsim_nb`` and ``llmsim --help`` load no
    numerical library, and building a simulator loads no ONNX, plotting or Dask."""
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {absent!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                            text=True).stdout.split()
    assert not loaded, f"{code!r} imported {loaded}"


def test_public_names_resolve_lazily():
    import llmsim_nb
    for name in llmsim_nb.__all__:
        assert getattr(llmsim_nb, name) is not None
        assert name in dir(llmsim_nb)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        llmsim_nb.nope  # noqa: B018
