"""The core's layout: no import cycles (type-only and function-level imports included), every
stage package says what lives in it, and the old plugin import paths still work, with a warning."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Where each installed package's files live in the repository.
PACKAGES = {"zoo": ROOT / "zoo", "zoo.demo": ROOT / "demo", "zoo.plugins": ROOT / "plugins"}


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every zoo module `path` imports, wherever the import statement stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycle = [*trail[trail.index(target) :], target] if target in trail else [target]
                pytest.fail("import cycle: " + " -> ".join([*cycle]))
            if target not in state:
                visit(target, [*trail, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("package", ["cli", "data", "serving", "training", "trust", "util"])
def test_each_stage_package_says_what_lives_there(package):
    init = ROOT / "zoo" / package / "__init__.py"
    tree = ast.parse(init.read_text())
    assert ast.get_docstring(tree), f"zoo/{package}/__init__.py has no docstring"


def test_the_plugin_surface_is_zoo_itself():
    import zoo
    from zoo.data.splits import ImageSplits, split_train_test
    from zoo.serving.pretrained import torchvision_model
    from zoo.util.catalog import cached

    assert zoo.ImageSplits is ImageSplits
    assert zoo.split_train_test is split_train_test
    assert zoo.torchvision_model is torchvision_model
    assert zoo.cached_catalog is cached
    assert set(zoo.__all__) >= {"hookimpl", "ModelSpec", "InputSpec", "TrainDefaults"}


@pytest.mark.parametrize(
    ("old", "name", "public"),
    [
        ("zoo.pretrained", "torchvision_model", "zoo.torchvision_model"),
        ("zoo.catalog", "cached", "zoo.cached_catalog"),
        ("zoo.datasets", "ImageSplits", "zoo.ImageSplits"),
        ("zoo.datasets", "split_train_test", "zoo.split_train_test"),
        ("zoo.datasets.splits", "split_train_test", "zoo.split_train_test"),
    ],
)
def test_old_plugin_import_paths_work_with_a_deprecation_warning(old, name, public):
    import zoo

    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=public.replace(".", r"\.")):
        value = getattr(module, name)
    assert value is getattr(zoo, public.removeprefix("zoo."))


def test_importing_zoo_warns_of_nothing_and_imports_no_torch():
    code = "import sys, zoo; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)
