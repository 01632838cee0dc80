"""The package's architecture as tests: layers import only the layers below them, and ``import
nvpkit`` stays light."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nvpkit"
LAYERS = ["core", "compress", "experiments", "viz", "sweeps"]
"""Bottom to top: a module may import from its own layer and those before it."""
HEAVY = ["papermill", "plotly", "matplotlib", "bjontegaard", "tensorly", "ray", "nbformat", "jupyter_client",
         "ipywidgets", "scipy"]


def layer_of(module: str) -> str | None:
    """``nvpkit.compress.codecs`` -> "compress"; the package root, the command line and ``__main__`` are
    above every layer."""
    parts = module.split(".")
    if parts[0] != "nvpkit" or module in ("nvpkit", "nvpkit.__main__", "nvpkit.cli"):
        return None
    return parts[1] if parts[1] in LAYERS else "core"


def imported_modules(path: Path) -> set[str]:
    """Every nvpkit module a file imports, at module level or inside functions."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from . import compress`
    return {m for m in found if m.split(".")[0] == "nvpkit"}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        yield name, path


def test_every_module_has_a_layer():
    assert {layer_of(name) for name, _ in modules()} == {None, *LAYERS}


@pytest.mark.parametrize("name,path", list(modules()), ids=[name for name, _ in modules()])
def test_layers_import_only_lower_layers(name, path):
    layer = layer_of(name)
    if layer is None:
        return
    higher = set(LAYERS[LAYERS.index(layer) + 1:])
    wrong = sorted(m for m in imported_modules(path) if layer_of(m) in higher)
    assert not wrong, f"{name} ({layer}) imports from a higher layer: {wrong}"


def test_the_layer_check_sees_a_violation(tmp_path):
    bad = tmp_path / "nvpkit" / "compress" / "x.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from ..experiments import run_experiment\n\ndef f():\n    from nvpkit.viz import LivePlot\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "nvpkit"
    try:
        assert imported_modules(bad) >= {"nvpkit.experiments", "nvpkit.viz"}
    finally:
        PACKAGE = saved


def test_import_nvpkit_loads_torch_and_the_core_only():
    code = ("import json, sys, nvpkit\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(loaded.stdout) == []


def test_names_of_higher_layers_load_on_first_use():
    code = ("import json, sys, nvpkit\n"
            "before = 'nvpkit.viz' in sys.modules\n"
            "plot = nvpkit.LivePlot\n"
            "print(json.dumps([before, 'nvpkit.viz' in sys.modules, plot.__module__, 'ray' in sys.modules]))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(loaded.stdout) == [False, True, "nvpkit.viz.live", False]
    import nvpkit
    assert set(nvpkit.__all__) <= set(dir(nvpkit))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        nvpkit.nothing  # noqa: B018


def test_editors_see_every_lazy_name():
    """The ``TYPE_CHECKING`` imports of ``nvpkit/__init__.py`` are exactly the lazy layers and names,
    each from its own layer."""
    import nvpkit

    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    block = next(n for n in ast.walk(tree) if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    seen = {}
    for node in block.body:
        for alias in node.names:
            seen[alias.name] = node.module or ""
    assert seen == {**{layer: "" for layer in nvpkit._LAZY}, **nvpkit._HOME}
