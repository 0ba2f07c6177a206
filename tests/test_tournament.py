"""`zoo tournament`: pretrained backbones ranked by a linear probe on their frozen features."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DEBIAN_FASHION_MNIST

LITE0 = "timm/tf_efficientnet_lite0"


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="no dataset-fashion-mnist")
def test_a_pretrained_backbone_ranks_above_itself_from_scratch(zoo_cli):
    args = f"tournament fashion-mnist -m {LITE0} -m lenet --scratch --limit 1000 --image-size 32"
    result = zoo_cli(f"{args} --threads 1 --json")
    assert result.code == 0, result.err
    entries = json.loads(result.out)
    probed = [(e["model"], e["pretrained"]) for e in entries if e["accuracy"] is not None]
    assert probed.index((LITE0, True)) < probed.index((LITE0, False))
    accuracy = {(e["model"], e["pretrained"]): e["accuracy"] for e in entries}
    assert accuracy[LITE0, True] > accuracy[LITE0, False] + 0.05
    skipped = [e for e in entries if e["accuracy"] is None]
    assert [(e["model"], e["pretrained"]) for e in skipped] == [("lenet", True)]
    assert skipped[0]["error"] == "model 'lenet' has no pretrained weights"
    assert entries[0]["parameters"] > 3_000_000 and entries[0]["image_size"] == 32
    table = zoo_cli(f"{args} --threads 1")  # the same, as a table
    assert table.code == 0 and table.out.splitlines()[0].split()[:3] == ["rank", "model", "probe"]
    last = table.out.strip().splitlines()[-1]
    assert last == f"next: zoo train {LITE0} -d fashion-mnist --pretrained --image-size 32"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ("digits -m 'nosuch*'", "error: no model matches 'nosuch*'"),
        ("digitz -m lenet", "error: unknown dataset 'digitz'; did you mean"),
        ("digits -m lenet --limit 0", "error: --limit must be at least 1"),
    ],
)
def test_a_bad_tournament_is_one_line(zoo_cli, args, error):
    result = zoo_cli(f"tournament {args}")
    assert result.code == 1 and result.err.startswith(error) and result.err.count("\n") == 1


def test_a_tournament_without_a_pretrained_candidate_says_so(zoo_cli):
    result = zoo_cli("tournament digits -m lenet -m cifar-cnn")
    assert result.code == 1, result.out
    assert "model 'cifar-cnn' has no pretrained weights" in " ".join(result.out.split())
    assert result.err == "error: no candidate could be probed (see the notes)\n"
