"""`zoo plugin new`: a plugin package to start from, written from the templates beside this
module (`string.Template`; `$$name` and the like are filled in).

The package: `pyproject.toml` (the `zoo` entry point, a compatible `zoo-models` range), one
plugin module with commented hooks, a test file on `zoo.testing.Harness`, and a README. It is
written into a temporary folder and renamed into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from string import Template

from zoo import __version__
from zoo.errors import ZooError

TEMPLATES = Path(__file__).parent / "templates"
KINDS = ("model", "dataset", "export")
NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
SUMMARIES = {
    "model": "A small convnet for grey images, ready for Grad-CAM",
    "dataset": "Horizontal and vertical stripes, two classes, generated",
    "export": "A model's tensors and metadata as a NumPy .npz archive",
}
EXTRA_DEPENDENCIES = {"model": (), "dataset": (), "export": ("numpy",)}


def requirement(version: str = __version__) -> str:
    """`zoo-models` at a range compatible with `version`: the same minor release line while
    zoo is 0.x (its surface may change between them), else the same major version."""
    major, minor = (int(part) for part in version.split(".")[:2])
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"zoo-models>={major}.{minor},<{upper}"


def names(name: str) -> dict[str, str]:
    """The plugin's names: the entry point (`name`, also the model, dataset or format), the
    distribution `zoo-NAME` and the module `zoo_NAME`."""
    if not NAME.fullmatch(name):
        raise ZooError(
            f"invalid plugin name {name!r}: use lowercase letters, digits and single hyphens, "
            "starting with a letter (acme, my-model)"
        )
    short = name.removeprefix("zoo-")
    dist = f"zoo-{short}"
    return {"name": short, "dist": dist, "module": dist.replace("-", "_")}


def new_plugin(name: str, kind: str = "model", parent: Path = Path(".")) -> Path:
    """Write the package for plugin `name` of `kind` into `parent`/zoo-NAME; its folder."""
    if kind not in KINDS:
        raise ZooError(f"unknown plugin kind {kind!r}; choose from {', '.join(KINDS)}")
    values = names(name)
    target = Path(parent) / values["dist"]
    if not Path(parent).is_dir():
        raise ZooError(f"folder {parent} does not exist")
    if target.exists():
        raise ZooError(f"{target} already exists; choose another name or --dir")
    dependencies = (requirement(), *EXTRA_DEPENDENCIES[kind])
    values |= {
        "summary": SUMMARIES[kind],
        "dependencies": ", ".join(f'"{d}"' for d in dependencies),
    }
    values["usage"] = _render(TEMPLATES / kind / "usage.md.tmpl", values).rstrip("\n")
    files = {
        "pyproject.toml": TEMPLATES / "pyproject.toml.tmpl",
        "README.md": TEMPLATES / "README.md.tmpl",
        f"{values['module']}.py": TEMPLATES / kind / "plugin.py.tmpl",
        f"tests/test_{values['module']}.py": TEMPLATES / kind / "test.py.tmpl",
    }
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    staging.mkdir()
    try:
        for relative, template in files.items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).write_text(_render(template, values))
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _render(template: Path, values: dict[str, str]) -> str:
    return Template(template.read_text()).substitute(values)
