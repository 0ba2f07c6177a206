"""`zoo tournament`: pretrained backbones ranked by a linear probe on their frozen features."""

from __future__ import annotations

import json
from dataclasses import replace

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
    best = entries[0]
    assert best["held_out"] == 100  # the tenth of the 1,000 held out, as zoo train holds it
    assert best["standard_error"] == pytest.approx(
        (best["accuracy"] * (1 - best["accuracy"]) / 100) ** 0.5
    )
    table = zoo_cli(f"tournament fashion-mnist -m {LITE0} --limit 1000 --image-size 32 --threads 1")
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


def test_close_calls_are_named_and_a_clear_win_is_not():
    from zoo.training.tournament import Entry, close_calls, ranked

    lite0 = Entry("timm/tf_efficientnet_lite0", True, 48, accuracy=0.836, held_out=1000)
    lite1 = Entry("timm/tf_efficientnet_lite1", True, 48, accuracy=0.835, held_out=1000)
    lite2 = Entry("timm/tf_efficientnet_lite2", True, 48, accuracy=0.78, held_out=1000)
    scratch = Entry("timm/tf_efficientnet_lite0", False, 48, accuracy=0.835, held_out=1000)
    assert close_calls(ranked([lite2, lite1, lite0])) == [lite0, lite1]
    assert close_calls(ranked([lite2, lite0, scratch])) == []  # scratch rows are references
    assert close_calls(ranked([lite0])) == []
    # 2 standard errors of the difference of 83.6% and 80% on 1,000 images: 3.4 points
    assert close_calls(ranked([lite0, replace(lite1, accuracy=0.800)])) == []
    assert close_calls(ranked([lite0, replace(lite1, accuracy=0.806)])) != []
    # Measured here (10,000 Fashion-MNIST images, 48 px): all three within the noise, not only
    # the runner-up; fine-tuned for 3 epochs they ranked Lite2, Lite0, Lite1.
    measured = ranked([lite0, lite1, replace(lite2, accuracy=0.825)])
    assert [e.model[-5:] for e in close_calls(measured)] == ["lite0", "lite1", "lite2"]
