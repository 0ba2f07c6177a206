"""`zoo export --format hub` and `zoo import`: a Hub folder that timm's `local-dir:` loads (a
grey-trained timm model among them), one for a zoo architecture, a card whose YAML parses and
whose figures are the weights file's, `--check` against a tampered folder, the folder back as a
weights file, hostile configs refused before anything is built, and no half-written folder."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from zoo import weights
from zoo.channels import grey_input, sum_first_conv
from zoo.errors import ZooError
from zoo.serving.export import example_input
from zoo.serving.hub import facts
from zoo.serving.hub_load import check_folder
from zoo.serving.inference import Classifier
from zoo.training.config import TrainConfig
from zoo.training.loop import train

TIMM = "timm/test_efficientnet"  # timm's own 100k-parameter test model


def one_line_error(result) -> str:
    assert result.code == 1, (result.out, result.err)
    assert result.err.startswith("error: ") and result.err.count("\n") == 1, result.err
    return result.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, registry) -> Path:
    """LeNet trained on digits for two epochs, with its run folder where $ZOO_RUNS_DIR (set
    for each test by conftest) points."""
    spec = registry.model("lenet")
    path = tmp_path_factory.mktemp("hub-weights") / "lenet-digits.safetensors"
    run = tmp_path_factory.getbasetemp() / "runs" / path.stem
    train(registry, spec, TrainConfig.for_model(spec, epochs=2), path, run, progress=False)
    return path


@pytest.fixture(scope="module")
def timm_grey(tmp_path_factory, registry) -> Path:
    """An untrained timm model for 32 px grey images, its stem summed as `zoo train` does."""
    spec = registry.model(TIMM)
    model = registry.build(spec, num_classes=3)
    sum_first_conv(model)
    meta = {"model": TIMM, "classes": ["cat", "dog", "owl"], "dataset": "fashion-mnist"}
    meta["input"] = {**grey_input(spec.input).to_dict(), "size": 32}
    meta["metrics"] = {"test_accuracy": 0.5, "train_images": 30, "test_images": 12}
    return weights.save(tmp_path_factory.mktemp("timm") / "grey.safetensors", model, meta)


def export(zoo_cli, source: Path, out: Path, *more: str) -> str:
    result = zoo_cli(["export", str(source), "--format", "hub", "--out", str(out), *more])
    assert result.code == 0, result.err
    return result.out


def front_matter(card: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", card, re.S)
    assert match, card[:200]
    return yaml.safe_load(match[1])


def test_a_timm_export_loads_with_timm_local_dir(zoo_cli, registry, timm_grey, tmp_path):
    import timm

    out = tmp_path / "hub"
    said = export(zoo_cli, timm_grey, out, "--check", "--license", "apache-2.0")
    assert "read by zoo vs the weights file" in said and "read by timm local-dir" in said
    written = sorted(p.name for p in out.iterdir())
    assert written == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "test_efficientnet" and config["num_classes"] == 3
    assert config["label_names"] == ["cat", "dog", "owl"]
    assert config["model_args"]["in_chans"] == 1
    assert config["pretrained_cfg"]["input_size"] == [1, 32, 32]
    assert config["pretrained_cfg"]["crop_pct"] == 1.0
    assert config["zoo"] == weights.read_meta(timm_grey)
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    original = Classifier.load(registry, timm_grey).model
    x = example_input(weights.input_spec(config["zoo"]))
    with torch.inference_mode():
        assert torch.allclose(model(x), original(x), atol=1e-5)
    card = (out / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "timm" and meta["license"] == "apache-2.0"
    assert meta["datasets"] == ["zalando-datasets/fashion_mnist"]
    assert 'timm.create_model("local-dir:.", pretrained=True)' in card
    assert '.convert("L")' in card


def test_a_lenet_export_and_its_card(zoo_cli, registry, trained, tmp_path):
    out = tmp_path / "hub"
    said = export(zoo_cli, trained, out, "--check")
    assert "read by zoo vs the weights file" in said and "timm" not in said
    state, meta = weights.read(trained)
    files = load_file(out / "model.safetensors")
    assert set(files) == set(state) and not any(k.startswith("zoo.") for k in files)
    from zoo.plugins.lenet import network

    network()(10).load_state_dict(files, strict=True)  # the tutorial's class, strictly
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "lenet" and config["num_features"] == 84
    assert config["zoo"] == {k: v for k, v in meta.items() if k not in ("unknown", "data")}
    assert str(trained.parent) not in json.dumps(config)  # no local path is published
    card = (out / "README.md").read_text()
    head = front_matter(card)
    assert head["library_name"] == "pytorch" and head["license"] == "other"
    assert head["pipeline_tag"] == "image-classification" and "zoo" in head["tags"]
    (result,) = head["model-index"][0]["results"]
    assert result["metrics"][0]["value"] == meta["metrics"]["test_accuracy"]
    metrics, calibration = meta["metrics"], meta["calibration"]
    assert f"| test accuracy | {metrics['test_accuracy']:.2%} " in card
    for name, row in metrics["per_class"].items():
        scores = " | ".join(f"{row[k]:.2%}" for k in ("precision", "recall", "f1"))
        assert f"| {name} | {scores} | {row['images']} |" in card
        assert row["recall"] == pytest.approx(metrics["per_class_accuracy"][name])
    assert f"| training time | {meta['timing']['epochs_done']:.1f} s over 2 epochs" in card
    ece = f"{calibration['ece_before']:.3f} before, {calibration['ece_after']:.3f} after"
    assert ece in card and f"| temperature | {calibration['temperature']:.3g} |" in card
    for method, rate in meta["explain"]["deletion_pass_rate"].items():
        assert f"| {method} | {rate:.0%} |" in card
    assert f"{1 - meta['unknown']['quantile']:.1%}" in card
    assert "8 x 8 pixel grey images, upscaled to 28 px" in card
    assert "Do not use it on photographs" in card
    figures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", card)
    assert figures and "curves.png" in figures
    assert sorted(figures) == sorted(p.name for p in out.glob("*.png"))


def test_import_gives_the_weights_file_back(zoo_cli, trained, timm_grey, tmp_path):
    for source in (trained, timm_grey):
        folder = tmp_path / f"{source.stem}-hub"
        export(zoo_cli, source, folder)
        back = tmp_path / f"{source.stem}-back.safetensors"
        result = zoo_cli(["import", str(folder), "--out", str(back)])
        assert result.code == 0, result.err
        state, meta = weights.read(source)
        again, imported = weights.read(back)
        for key in ("model", "classes", "input", "metrics", "dataset", "created"):
            assert imported[key] == meta[key]
        assert again.keys() == state.keys()
        assert all(torch.equal(again[k], state[k]) for k in state)
        assert "exists" in one_line_error(zoo_cli(["import", str(folder), "--out", str(back)]))


def test_a_plain_timm_folder_imports(zoo_cli, registry, tmp_path):
    import timm
    from timm.models import save_for_hf

    model = timm.create_model("test_efficientnet", num_classes=4).eval()
    save_for_hf(model, tmp_path / "plain", safe_serialization=True)  # no label names
    out = tmp_path / "plain.safetensors"
    result = zoo_cli(["import", str(tmp_path / "plain" / "model.safetensors"), "-o", str(out)])
    assert result.code == 0, result.err
    classifier = Classifier.load(registry, out)
    assert classifier.meta["model"] == TIMM
    assert classifier.classes == ["class0", "class1", "class2", "class3"]
    assert classifier.input.size == 160 and classifier.input.channels == 3
    x = example_input(classifier.input)
    with torch.inference_mode():
        assert torch.allclose(classifier.model(x), model(x), atol=1e-5)


def test_check_fails_on_a_tampered_folder(zoo_cli, registry, trained, tmp_path):
    out = tmp_path / "hub"
    export(zoo_cli, trained, out)
    classifier = Classifier.load(registry, trained)
    assert "ok" in check_folder(registry, out, classifier.model, classifier.input)
    state = load_file(out / "model.safetensors")
    state["fc3.bias"] = state["fc3.bias"] + 0.01
    save_file(state, out / "model.safetensors")
    with pytest.raises(ZooError, match=r"read by zoo differs from the weights file") as caught:
        check_folder(registry, out, classifier.model, classifier.input)
    assert "\n" not in str(caught.value)


HOSTILE = {
    "huge num_classes": (
        {"architecture": "test_efficientnet", "num_classes": 10**12, "pretrained_cfg": {}},
        "num_classes must be a whole number from 1 to 100,000",
    ),
    "architecture a number": ({"architecture": 7, "num_classes": 2}, "architecture must be"),
    "label names as text": (
        {"architecture": "test_efficientnet", "num_classes": 2, "label_names": "ab"},
        "label_names must be a list of 2 names",
    ),
    "a vast input": (
        {
            "architecture": "test_efficientnet",
            "num_classes": 2,
            "pretrained_cfg": {"input_size": [3, 90000, 90000], "mean": [0] * 3, "std": [1] * 3},
        },
        "input.size is 90000",
    ),
    "constructor arguments": (
        {
            "architecture": "test_efficientnet",
            "num_classes": 2,
            "model_args": {"depth_multiplier": 1000},
            "pretrained_cfg": {"input_size": [3, 32, 32], "mean": [0] * 3, "std": [1] * 3},
        },
        "model_args.depth_multiplier is not one zoo builds timm models with",
    ),
    "zoo classes not a list": (
        {"architecture": "lenet", "zoo": {"model": "lenet", "classes": 3, "input": {}}},
        "classes must be a list of class names",
    ),
    "zoo disagrees with config": (
        {
            "architecture": "lenet",
            "num_classes": 3,
            "zoo": {
                "model": "lenet",
                "classes": ["a", "b"],
                "input": {"channels": 1, "size": 32, "mean": [0.5], "std": [0.5]},
            },
        },
        "num_classes disagrees with zoo.classes",
    ),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_config_is_refused_in_one_line(zoo_cli, tmp_path, case):
    config, words = HOSTILE[case]
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    save_file({"w": torch.zeros(1)}, folder / "model.safetensors")
    out = tmp_path / "out.safetensors"
    error = one_line_error(zoo_cli(["import", str(folder), "--out", str(out)]))
    assert words in error
    assert not out.exists()


def test_config_that_is_not_json_or_too_deep(zoo_cli, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    save_file({"w": torch.zeros(1)}, folder / "model.safetensors")
    for text, words in (("{NaN", "not a valid config"), ("[" * 100_000, "not a valid config")):
        (folder / "config.json").write_text(text)
        assert words in one_line_error(zoo_cli(["import", str(folder), "-o", str(tmp_path / "x")]))


def test_a_failed_export_leaves_nothing_half_written(zoo_cli, trained, tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    error = one_line_error(zoo_cli(["export", str(trained), "-f", "hub", "-o", str(other)]))
    assert "other files than a zoo Hub export's" in error
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    out = tmp_path / "hub"
    export(zoo_cli, trained, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # A figure that cannot be read fails the copy halfway through the folder's writing.
    run = Path(os.environ["ZOO_RUNS_DIR"]) / trained.stem
    broken = run / "zz-unreadable.png"
    broken.symlink_to("/proc/self/mem")
    try:
        error = one_line_error(zoo_cli(["export", str(trained), "-f", "hub", "-o", str(out)]))
    finally:
        broken.unlink()
    assert f"cannot write {out}" in error
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub", "mine"]
    bad = one_line_error(zoo_cli(["export", str(trained), "-f", "hub", "--license", "Not Free"]))
    assert "is not a Hub license id" in bad
    assert "--license is for --format hub" in one_line_error(
        zoo_cli(["export", str(trained), "--license", "mit"])
    )


def test_the_published_facts_keep_no_local_path():
    meta = {
        "model": "lenet",
        "dataset": "folder:/home/me/pets",
        "data": {"dataset": "folder:/home/me/pets", "data_dir": "/home/me/data"},
        "unknown": {"layer": "fc1"},
        "settings": {"init_from": "~/runs/a.safetensors", "data_dir": None, "dataset": "hf:me/set"},
    }
    assert facts(meta) == {
        "model": "lenet",
        "dataset": "folder:pets",
        "settings": {"init_from": "a.safetensors", "data_dir": None, "dataset": "hf:me/set"},
    }
