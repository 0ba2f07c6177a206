"""`zoo predict --amp`: bf16 autocast gives the fp32 answers, within bf16's precision."""

from __future__ import annotations

import json

from PIL import Image

from zoo.data.digits import load_digits


def test_amp_agrees_with_fp32(zoo_cli, lenet_weights, tmp_path):
    data = load_digits()
    for i in range(40):
        Image.fromarray(data.test_images[i, 0].numpy()).save(tmp_path / f"{i:02d}.png")
    answers = {}
    for amp in ("", "--amp"):
        result = zoo_cli(f"predict {lenet_weights} {tmp_path} --json -k 1 {amp}")
        assert result.code == 0, result.err
        lines = [json.loads(line) for line in result.out.splitlines()]
        answers[amp] = {line["path"]: line["top"][0] for line in lines}
    assert answers[""].keys() == answers["--amp"].keys() and len(answers[""]) == 40
    same = sum(answers[""][p]["label"] == answers["--amp"][p]["label"] for p in answers[""])
    assert same >= 38  # bf16 may flip a near tie
    for path, top in answers["--amp"].items():
        assert abs(top["probability"] - answers[""][path]["probability"]) < 0.05
