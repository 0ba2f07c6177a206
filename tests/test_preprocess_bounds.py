"""`prepare` and `pil_to_uint8` cost memory by the model's input, not by the image's aspect:
a 1xN or Nx1 image is cropped before it is resized (it used to be scaled up first, ~3 GB for
a 1x5000 PNG on resnet18). Peak memory is measured as the rise of the process's peak RSS in a
fresh interpreter, so torch's allocations (which tracemalloc does not see) count."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from zoo.data.preprocess import center_square, prepare, resize_uint8
from zoo.specs import InputSpec

MEASURE = """
import json, resource, sys
import numpy as np, torch
from PIL import Image
from zoo.data.preprocess import pil_to_uint8, prepare
from zoo.specs import InputSpec

height, width, channels, size, via_pil = json.loads(sys.argv[1])
spec = InputSpec(channels=channels, size=size, mean=(0.5,) * channels, std=(0.5,) * channels)
images = torch.randint(0, 255, (1, 1, height, width), dtype=torch.uint8)
image = Image.fromarray(images[0, 0].numpy()) if via_pil else None
prepare(torch.randint(0, 255, (1, 1, 64, 64), dtype=torch.uint8), spec)  # warm up
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if via_pil:
    images = pil_to_uint8(image, channels, size)[None]
x = prepare(images, spec)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"shape": list(x.shape), "rise_mb": (after - before) / 1024}))
"""

N = 49_999_999  # one pixel under the demo's 50-megapixel cap


@pytest.mark.parametrize(
    ("height", "width", "channels", "size", "via_pil"),
    [
        (1, N, 3, 224, False),
        (N, 1, 3, 224, False),
        (1, N, 1, 32, False),
        (1, 5000, 3, 224, False),
        (1, 20_000_000, 3, 224, True),
        (20_000_000, 1, 1, 32, True),
    ],
    ids=["1xN-resnet", "Nx1-resnet", "1xN-lenet", "1x5000-resnet", "1xN-pil", "Nx1-pil"],
)
def test_thin_images_cost_little_memory(height, width, channels, size, via_pil):
    args = json.dumps([height, width, channels, size, via_pil])
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, args], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(out.splitlines()[-1])
    print(result)
    assert result["shape"] == [1, channels, size, size]
    assert result["rise_mb"] < 32  # the model input is 0.6 MB; scaling up first took GBs


def test_crop_then_resize_keeps_the_centre():
    """The centre square is what is kept, as with resize-then-crop (torchvision's order)."""
    spec = InputSpec(channels=1, size=8, mean=(0.0,), std=(1.0,))
    images = torch.zeros(1, 1, 16, 48, dtype=torch.uint8)
    images[..., 16:32] = 255  # the centre 16x16 square is white, the sides black
    assert prepare(images, spec).min() == 1.0
    assert center_square(images).shape[-2:] == (16, 16)
    assert resize_uint8(images, 8).min() == 255


def test_a_border_frames_the_image_resized_inside_it_in_black():
    spec = InputSpec(channels=1, size=32, mean=(0.5,), std=(0.5,), border=2)
    images = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)
    x = prepare(images, spec)
    assert x.shape == (2, 1, 32, 32) and spec.image_size == 28
    assert torch.equal(x[:, :, 2:30, 2:30], torch.ones(2, 1, 28, 28))  # as it was, not resized
    x[:, :, 2:30, 2:30] = -1
    assert torch.equal(x, torch.full_like(x, -1))  # the frame: black, normalised
    eight = prepare(torch.full((1, 1, 8, 8), 255, dtype=torch.uint8), spec)
    assert eight[0, 0, 2:30, 2:30].eq(1).all() and eight[0, 0, :2].eq(-1).all()
    assert InputSpec.from_dict(spec.to_dict()) == spec
    assert "border" not in InputSpec(1, 32).to_dict()  # as files before borders
    with pytest.raises(ValueError, match="border must leave an image in size 32, not 16"):
        InputSpec(1, 32, border=16)
