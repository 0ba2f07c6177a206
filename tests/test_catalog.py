"""The torch-free catalog: light commands import neither torch, torchvision nor timm (read from
`python -X importtime`), and timm's catalog is computed once per timm version and cached."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import version

import pytest

from zoo.util import catalog

HEAVY = {"torch", "torchvision", "timm"}
LIGHT_COMMANDS = [
    ["list"],
    ["list", "timm/*"],
    ["plugins"],
    ["datasets"],
    ["info", "no-such-model"],
    ["train", "lenett"],
]


def imported_modules(args: list[str]) -> tuple[int, set[str]]:
    """Run `python -X importtime -m zoo ARGS`; its exit code and the top-level packages it
    imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "zoo", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", result.stderr, re.M)
    assert names, result.stderr[-2000:]
    return result.returncode, {name.split(".")[0] for name in names}


@pytest.mark.parametrize("args", LIGHT_COMMANDS, ids=" ".join)
def test_light_commands_import_no_torch(args, registry):
    # `registry` has built the timm catalog cache (in this session's $ZOO_CACHE) already.
    code, modules = imported_modules(args)
    assert code == (1 if args[0] in ("info", "train") else 0)
    assert not modules & HEAVY, sorted(modules & HEAVY)


def test_a_model_command_does_import_torch(registry):
    code, modules = imported_modules(["info", "lenet"])
    assert code == 0 and "torch" in modules  # the check above can see torch when it is there


def test_timm_catalog_is_cached_by_version(registry):
    import timm

    from zoo.plugins.timm_models import CATALOG

    assert CATALOG.startswith(f"timm-{version('timm')}")
    path = catalog.catalog_dir() / "catalog" / f"{CATALOG}.json"
    entries = json.loads(path.read_text())
    assert [entry["arch"] for entry in entries] == timm.list_models()
    resnet50 = next(entry for entry in entries if entry["arch"] == "resnet50")
    assert resnet50["head"] == "fc" and resnet50["pretrained"] and resnet50["size"] == 224
    assert resnet50["hub"] == timm.get_pretrained_cfg("resnet50").hf_hub_id
    every_timm = registry.find("timm/*")
    assert len(every_timm) == len(entries)
    assert registry.model("timm/resnet50").input.mean == tuple(resnet50["mean"])


def test_cached_computes_once_and_recovers_from_a_bad_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"n": len(calls)}

    assert catalog.cached("thing-1.0", compute) == {"n": 1}
    assert catalog.cached("thing-1.0", compute) == {"n": 1} and len(calls) == 1
    (tmp_path / "catalog" / "thing-1.0.json").write_text("{not json")
    with pytest.warns(UserWarning, match="thing-1.0.json was damaged"):
        assert catalog.cached("thing-1.0", compute) == {"n": 2}
    assert catalog.cached("thing-2.0", compute) == {"n": 3}  # another version, another file
    assert sorted(p.name for p in (tmp_path / "catalog").iterdir()) == [
        "thing-1.0.json",
        "thing-2.0.json",
    ]


def test_cache_folder_follows_the_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("ZOO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert catalog.catalog_dir() == tmp_path / "xdg" / "zoo"
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "mine"))
    assert catalog.catalog_dir() == tmp_path / "mine"


def test_unwritable_cache_still_answers(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("ZOO_CACHE", str(blocker))  # a file, so no folder can be made in it
    assert catalog.cached("x", lambda: [1, 2]) == [1, 2]


GOOD = [
    {
        "arch": "tiny",
        "channels": 3,
        "size": 224,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "head": "fc",
        "pretrained": False,
    }
]
DAMAGED = {
    "empty": ("[]", "no architectures"),
    "wrong-types": ('[{"arch": 5, "channels": "3"}]', "a mean or std of the wrong length"),
    "bad-entry": (json.dumps([{**GOOD[0], "arch": 7}]), "a malformed entry"),
    "deep": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "nan": ('[{"arch": "a", "size": NaN}]', "NaN is not JSON"),
    "truncated": ('[{"arch": "a", "chan', "Unterminated string"),
    "huge": ('["' + "x" * 17_000_000 + '"]', "more than 16,000,000"),
}


@pytest.mark.parametrize("case", [*DAMAGED, "fifo", "folder"])
def test_a_damaged_catalog_is_named_and_rebuilt(tmp_path, monkeypatch, case):
    from zoo.plugins.timm_models import check_catalog

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    path = tmp_path / "catalog" / "timm-9.json"
    path.parent.mkdir()
    if case == "fifo":
        os.mkfifo(path)  # reading it would hang every `zoo list`
    elif case == "folder":
        path.mkdir()
    else:
        path.write_text(DAMAGED[case][0])
    with pytest.warns(UserWarning, match=rf"the catalog cache {path} was damaged") as warned:
        assert catalog.cached("timm-9", lambda: GOOD, check_catalog) == GOOD
    if case in DAMAGED:
        assert DAMAGED[case][1] in str(warned[0].message)
    if case != "folder":  # a folder cannot be replaced: it is named at every run instead
        assert json.loads(path.read_text()) == GOOD  # healed
        assert catalog.cached("timm-9", lambda: [], check_catalog) == GOOD


def test_zoo_list_heals_an_empty_timm_catalog(registry, tmp_path):
    """`[]` used to make every timm model vanish silently, and for good."""
    from zoo.plugins.timm_models import CATALOG

    path = tmp_path / "catalog" / f"{CATALOG}.json"
    path.parent.mkdir()
    path.write_text("[]")
    env = {**os.environ, "ZOO_CACHE": str(tmp_path), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "zoo", "list", "timm/*", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert (
        result.returncode == 0 and "was damaged (no architectures); rebuilding it" in result.stderr
    )
    assert len(json.loads(result.stdout)) == len(registry.find("timm/*"))
    assert len(json.loads(path.read_text())) == len(registry.find("timm/*"))
