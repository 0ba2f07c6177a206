"""`zoo plugin new`: each kind of package, pip-installed (editable) into a fresh venv, passes its
own generated tests there, and is clean to ruff."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

KINDS = {"model": "acme", "dataset": "stripes", "export": "npzip"}


def fresh_venv(folder: Path) -> Path:
    """A new venv (no pip of its own) that sees this one's packages through a .pth file, so
    torch is not installed again; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    parent = sysconfig.get_path("purelib")
    Path(site, "zoo-parent.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return python


def test_each_kind_installs_into_a_fresh_venv_and_passes_its_tests(zoo_cli, tmp_path):
    for kind, name in KINDS.items():
        result = zoo_cli(["plugin", "new", name, "--kind", kind, "--dir", str(tmp_path)])
        assert result.code == 0, result.err
        assert f"wrote {tmp_path / f'zoo-{name}'}/ ({kind} plugin)" in result.out
    packages = [tmp_path / f"zoo-{name}" for name in KINDS.values()]
    ruff = Path(sys.executable).with_name("ruff")
    for check in (["check"], ["format", "--check"]):
        lint = subprocess.run([ruff, *check, *packages], capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    for package in packages:
        project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
        zoo_models = Requirement(project["dependencies"][0])
        assert zoo_models.name == "zoo-models" and version("zoo-models") in zoo_models.specifier

    python = fresh_venv(tmp_path / "venv")
    editable = [arg for package in packages for arg in ("-e", str(package))]
    pip = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*pip, *editable], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOO_LOAD", "ZOO_PLUGINS"))}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    tests = [str(package / "tests") for package in packages]
    run = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "8 passed" in run.stdout

    listed = subprocess.run(
        [python, "-m", "zoo", "plugins"], cwd=tmp_path, env=env, capture_output=True, text=True
    ).stdout
    for name in KINDS.values():
        assert f"{name} (entry point zoo_{name})" in listed
        assert f"zoo-{name} 0.1.0; hooks " in listed


def test_refusals_are_one_line_and_write_nothing(zoo_cli, tmp_path):
    here = ["--dir", str(tmp_path)]
    assert zoo_cli(["plugin", "new", "acme", *here]).code == 0
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for args, message in [
        (["acme", *here], f"{tmp_path / 'zoo-acme'} already exists; choose another name or --dir"),
        (["Acme_1", *here], "invalid plugin name 'Acme_1': use lowercase letters, digits and"),
        (["ok", "--kind", "optimizer", *here], "Invalid value for '--kind'"),
        (["ok", "--dir", str(tmp_path / "nowhere")], f"folder {tmp_path / 'nowhere'} does not"),
    ]:
        result = zoo_cli(["plugin", "new", *args])
        assert result.code == 1 and result.err.count("\n") == 1, result.err
        assert message in result.err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
