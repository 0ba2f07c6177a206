"""The `zoo` command line, run through its real console-script entry point."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from PIL import Image
from safetensors import safe_open

from tests.test_models import LENET_TREE


def test_help_imports_no_torch():
    code = (
        "import sys\nfrom zoo.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules and 'gradio' not in sys.modules, 'heavy import'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "train" in result.stdout and "demo" in result.stdout


def test_list_shows_the_curated_set(zoo_cli):
    result = zoo_cli("list")
    assert result.code == 0
    for name in ("lenet", "cifar-cnn", "resnet18", "vgg16", "timm/resnet50"):
        assert name in result.out
    assert "timm/resnet101 " not in result.out and "zoo list 'timm/*'" in result.out


def test_list_pattern_and_json(zoo_cli):
    result = zoo_cli(["list", "timm/resnet1*", "--json"])
    names = [m["name"] for m in json.loads(result.out)]
    assert "timm/resnet101" in names and all(n.startswith("timm/resnet1") for n in names)
    lenet = json.loads(zoo_cli("list lenet --json").out)[0]
    assert lenet["input"] == {"channels": 1, "size": 32, "mean": [0.5], "std": [0.5], "border": 2}
    assert lenet["head"] == "fc3" and lenet["plugin"] == "zoo.plugins.lenet"


def test_list_finds_timm_weights_in_the_hugging_face_cache_and_imports_it_only_then(tmp_path):
    """The cache in huggingface_hub's layout: refs/main names the snapshot holding the file."""
    repo = tmp_path / "hub" / "models--timm--resnet50.a1_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    (repo / "snapshots" / "0123abcd").mkdir(parents=True)
    (repo / "snapshots" / "0123abcd" / "model.safetensors").write_bytes(b"weights")
    code = (
        "import json, sys\nfrom zoo.cli import run\n"
        "sys.argv = ['zoo', 'list', 'timm/resnet50', '--json']\n"
        "try:\n    run()\nexcept SystemExit:\n    pass\n"
        "print('huggingface_hub' in sys.modules)\n"
    )
    answers = {}
    for name, cache in {"filled": tmp_path / "hub", "empty": tmp_path / "none"}.items():
        env = {**os.environ, "HF_HUB_CACHE": str(cache)}
        command = [sys.executable, "-c", code]
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
        listing, imported = result.stdout.rsplit("\n", 2)[:2]
        answers[name] = (json.loads(listing)[0]["pretrained_here"], imported)
    assert answers == {"filled": (True, "True"), "empty": (False, "False")}


def test_info_prints_the_seed_tree_and_parameters(zoo_cli):
    result = zoo_cli("info lenet")
    assert result.code == 0
    assert "LeNet(\n" + LENET_TREE in result.out
    assert "10 parameter tensors" in result.out
    assert "conv1.weight" in result.out and "[6, 1, 5, 5]" in result.out
    assert "total parameters: 61,706" in result.out
    assert (
        "input 1x32x32 (the image 28x28 in a black border), mean (0.5,), std (0.5,)" in result.out
    )
    assert (
        "its recipe on fashion-mnist, over the defaults:\n"
        "  --epochs 30 --batch-size 128 --lr 0.005 --weight-decay 0.15 --flip\n" in result.out
    )


def test_info_graph_and_json(zoo_cli):
    result = zoo_cli("info lenet --graph")
    assert "MseLossBackward0\n  AddmmBackward0" in result.out
    facts = json.loads(zoo_cli("info cifar-cnn --json --classes 4").out)
    assert facts["parameters"][-1] == {"name": "fc3.bias", "shape": [4]}
    assert facts["parameter_count"] == sum(
        eval("*".join(map(str, p["shape"]))) for p in facts["parameters"]
    )


def test_plugins_shows_a_broken_plugin_and_the_rest_works(zoo_cli, tmp_path):
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    result = zoo_cli(["--plugins-dir", str(tmp_path), "plugins"])
    assert result.code == 0
    assert "error: ModuleNotFoundError: No module named 'not_a_module_anywhere'" in result.out
    assert "zoo.plugins.lenet (built-in) lenet" in result.out
    assert "warning: plugin" in result.err and "broken.py failed to load" in result.err
    plugins = json.loads(zoo_cli(["--plugins-dir", str(tmp_path), "plugins", "--json"]).out)
    broken = next(p for p in plugins if p["name"].endswith("broken.py"))
    assert "ModuleNotFoundError" in broken["error"]
    lenet = next(p for p in plugins if p["name"] == "zoo.plugins.lenet")
    assert lenet["models"] == ["lenet"] and lenet["error"] is None
    assert zoo_cli(["--plugins-dir", str(tmp_path), "info", "lenet"]).code == 0


def test_unknown_model_is_one_line_with_close_matches(zoo_cli):
    result = zoo_cli("info resnet-18")
    assert result.code == 1
    assert result.err.startswith("error: unknown model 'resnet-18'; did you mean 'resnet18'")
    assert result.err.count("\n") == 1


def test_bad_option_values_are_one_clear_line(zoo_cli, tmp_path):
    for args, message in [
        ("train lenet --epochs 0", "error: --epochs must be at least 1"),
        ("train lenet --optimizer lion", "error: unknown optimizer 'lion'"),
        ("train lenet --dataset digitz", "error: unknown dataset 'digitz'; did you mean 'digits'?"),
    ]:
        result = zoo_cli(f"{args} --out {tmp_path}")
        assert result.code == 1 and result.err.startswith(message), result.err
        assert "Traceback" not in result.err
    result = zoo_cli(f"train lenet --out {tmp_path}/mine.safetensors")
    assert result.code == 1 and "--out is the weights folder, not a file" in result.err
    assert f"--out {tmp_path} --run-name mine" in result.err
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_are_one_error_line_and_exit_1(zoo_cli):
    for args, message in [
        ("train lenet --epochs ten", "error: Invalid value for '--epochs'"),
        ("info lenet --classes many", "error: Invalid value for '--classes'"),
        ("list --bogus", "error: No such option: --bogus; see zoo list --help"),
        ("train", "error: Missing argument 'name'; see zoo train --help"),
    ]:
        result = zoo_cli(args)
        assert result.code == 1 and result.err.startswith(message), result.err
        assert result.err.count("\n") == 1 and result.out == ""
    help_ = zoo_cli("train --help")
    assert help_.code == 0 and "--epochs" in help_.out and help_.err == ""


def test_train_lenet_writes_self_describing_weights(zoo_cli, tmp_path):
    result = zoo_cli(f"train lenet --epochs 2 --out {tmp_path} -q")
    assert result.code == 0, result.err
    path = tmp_path / "lenet-digits.safetensors"
    assert f"-> {path}" in result.out and "test accuracy" in result.out
    with safe_open(str(path), framework="pt") as f:
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
        assert f.get_tensor("fc3.weight").shape == (10, 84)
    assert meta["model"] == "lenet" and meta["settings"]["epochs"] == 2
    assert 0.5 < meta["metrics"]["test_accuracy"] <= 1
    assert [p.name for p in tmp_path.iterdir()] == ["lenet-digits.safetensors"]


def test_train_reports_its_fixed_costs_by_where_they_went(zoo_cli, tmp_path):
    result = zoo_cli(f"train lenet --epochs 2 --limit 300 --out {tmp_path} -q")
    assert result.code == 0, result.err
    whole = float(re.search(r"the whole run ([\d.]+)", result.out).group(1))
    training = float(re.search(r"training ([\d.]+)", result.out).group(1))
    line = next(line for line in result.out.splitlines() if line.startswith("fixed costs"))
    fixed = float(re.match(r"fixed costs ([\d.]+)s", line).group(1))
    parts = dict(re.findall(r"([a-z, -]+?) (-?[\d.]+)", line.split("(", 1)[1]))
    names = ["start-up and data", "evaluation", "post-hoc fit", "checkpoints, figures and files"]
    assert [name.strip(", ") for name in parts] == names
    assert all(float(seconds) >= 0 for seconds in parts.values())
    assert fixed == pytest.approx(sum(map(float, parts.values())), abs=0.25)
    assert fixed + training == pytest.approx(whole, abs=0.25)


def test_train_is_reproducible_with_a_seed(zoo_cli, tmp_path):
    for run in ("a", "b"):
        args = f"--epochs 1 --threads 1 --channels-last --out {tmp_path} --run-name {run} -q"
        assert zoo_cli(f"train lenet {args}").code == 0
    a, b = (tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    with safe_open(str(a), framework="pt") as fa, safe_open(str(b), framework="pt") as fb:
        assert all((fa.get_tensor(k) == fb.get_tensor(k)).all() for k in fa.keys())  # noqa: SIM118


def test_home_and_variables_are_expanded_in_every_path(
    zoo_cli, tmp_path, monkeypatch, lenet_weights
):
    from tests.datafiles import write_image_folder

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WEIGHTS", str(lenet_weights.parent))
    write_image_folder(tmp_path / "photos", ["cat", "dog"], per_class=6)
    result = zoo_cli(
        "train lenet -d folder:~/photos --epochs 1 -q --out '$WEIGHTS/../out' --run-name home"
    )
    assert result.code == 0, result.err
    assert (lenet_weights.parent.parent / "out" / "home.safetensors").is_file()
    result = zoo_cli(f"eval '$WEIGHTS/{lenet_weights.name}' --json")
    assert result.code == 0 and json.loads(result.out)["images"] > 0
    result = zoo_cli("predict ~/nothing.safetensors ~/a.png")
    assert result.err == f"error: {tmp_path / 'nothing.safetensors'}: no such weights file\n"


def zoo_lines(args: list[str], columns: int | None, table_from: int = 0) -> list[str]:
    """`zoo ARGS`'s output lines, piped (not a terminal), with $COLUMNS set or not; those
    from `table_from` on (the tables) fit the width."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update({"COLUMNS": str(columns)} if columns else {})
    run = subprocess.run(
        [sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines and all(len(line) <= (columns or 80) for line in lines[table_from:]), run.stdout
    return lines


# A plugin file whose import registers an exit handler, as a library a plugin imports may.
EXIT_HANDLER_PLUGIN = """
import atexit, os
atexit.register(lambda: open(os.environ["ZOO_TEST_MARK"], "a").write("ran"))
"""


def test_the_console_script_ends_with_its_status_its_output_whole_and_exit_handlers_run(
    tmp_path,
):
    (tmp_path / "exit_handler.py").write_text(EXIT_HANDLER_PLUGIN)
    mark = tmp_path / "mark"
    env = {**os.environ, "ZOO_TEST_MARK": str(mark)}
    zoo = [sys.executable, "-m", "zoo", "--plugins-dir", str(tmp_path)]
    listed = subprocess.run([*zoo, "list", "timm/*", "--json"], capture_output=True, env=env)
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout) > 2**16  # more than a pipe holds: written out before the end
    assert any(m["name"] == "timm/resnet50" for m in json.loads(listed.stdout))
    assert mark.read_text() == "ran"
    failed = subprocess.run([*zoo, "info", "lenett"], capture_output=True, text=True, env=env)
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: unknown model 'lenett'")
    assert mark.read_text() == "ranran"


@pytest.mark.parametrize("columns", [None, 80])
def test_list_and_datasets_read_well_at_80_columns_and_piped(columns):
    lines = zoo_lines(["list"], columns)
    text = " ".join(" ".join(line.split()) for line in lines)
    assert lines[0].split() == ["model", "input", "pretrained", "summary"]
    assert "LeNet of the PyTorch tutorial: 2 convs + 3 linear layers" in text  # words whole
    assert len(lines) <= 4 * 10 + 2  # not one character a line
    lines = zoo_lines(["list", "timm/vit_*"], columns)
    assert all(len(line.split()[0]) > 1 for line in lines if line.split() and line[0] != " ")
    lines = zoo_lines(["datasets"], columns)
    table = lines[: lines.index("")] if "" in lines else lines
    assert table[0].split()[:2] == ["dataset", "found"]
    rows = sum(1 for line in table[1:] if not line.startswith(" "))
    assert rows >= 6 and len(table) <= 1 + 4 * rows
    wide = zoo_lines(["list"], 160)
    assert wide[0].split() == ["model", "input", "pretrained", "plugin", "summary"]
    # cifar-cnn, resnet18, 7 timm models, the pretrained column's legend, "and N more"
    assert len(wide) == 1 + sum(1 for line in wide if line.startswith(("lenet", "vgg16"))) + 11


def test_predict_and_eval_tables_fit_80_columns(zoo_cli, tmp_path):
    from tests.datafiles import write_cifar10

    write_cifar10(tmp_path / "data")
    args = f"--data-dir {tmp_path / 'data'} --out {tmp_path}"
    assert zoo_cli(f"train lenet -d cifar10 --epochs 1 -q {args}").code == 0
    weights = str(tmp_path / "lenet-cifar10.safetensors")
    for i in range(2):
        Image.new("RGB", (40, 30), (40 * i, 90, 200)).save(tmp_path / f"photo_{i}.png")
    lines = zoo_lines(["predict", weights, str(tmp_path), "--top-k", "10"], None)
    assert lines[0].split() == ["image", "unknown", "rank", "prediction"]
    assert len(lines) == 1 + 2 * 10
    assert all(re.search(r"#\d+ +\w+ \d+\.\d%$", line.rstrip()) for line in lines[1:])
    lines = zoo_lines(["predict", weights, str(tmp_path), "--top-k", "2"], None)
    assert lines[0].split() == ["image", "unknown", "#1", "#2"] and len(lines) == 3
    lines = zoo_lines(["eval", weights, "--data-dir", str(tmp_path / "data")], None, 10**6)
    tables = [i for i, line in enumerate(lines) if line.startswith(("class ", "true "))]
    matrix = tables[1]
    for start in tables:  # the per-class table and the confusion matrix: 11 lines each
        assert max(len(line) for line in lines[start : start + 11]) <= 80
    assert lines[matrix].split()[3:] == [str(i) for i in range(10)]
    assert lines[matrix + 2].split()[:2] == ["1", "automobile"]


def test_list_with_no_match_says_so(zoo_cli):
    result = zoo_cli("list 'resnet1*9'")
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("error: no model matches 'resnet1*9'; did you mean 'resnet18'")
    assert zoo_cli("list 'resnet1*9' --json").out.strip() == "[]"


def test_plugins_returning_wrong_types_do_not_break_other_models(zoo_cli, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "oops.py").write_text(
        "import zoo\n\n"
        "@zoo.hookimpl\ndef zoo_models():\n"
        "    return [zoo.ModelSpec(name='stringy', summary='s', input=zoo.InputSpec(1, 8),"
        " head='fc')]\n\n"
        "@zoo.hookimpl\ndef zoo_build(spec, num_classes, pretrained):\n"
        "    return 'a model' if spec.name == 'stringy' else None\n\n"
        "@zoo.hookimpl\ndef zoo_finetune(spec, model, strategy):\n    return 'oops'\n"
    )
    result = zoo_cli(f"--plugins-dir {plugins} info stringy")
    assert result.code == 1 and result.err.count("\n") == 1
    assert "oops.py failed in zoo_build for 'stringy': returned str 'a model'" in result.err
    result = zoo_cli(
        f"--plugins-dir {plugins} train lenet --epochs 1 --limit 50 --out {tmp_path} -q "
        f"--runs-dir {tmp_path / 'runs'}"
    )
    assert result.code == 0, result.err
    assert "warning: plugin" in result.err and "failed in zoo_finetune for 'lenet'" in result.err
    assert "Traceback" not in result.err and (tmp_path / "lenet-digits.safetensors").is_file()
