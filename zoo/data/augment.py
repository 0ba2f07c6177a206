"""Batch-level augmentation on the device: a random padded crop, a random horizontal flip;
for photos, random-resized crops, flips and TrivialAugment (torchvision.transforms.v2);
random erasing (timm's)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, generator: torch.Generator, flip: bool) -> torch.Tensor:
    """Shift each image of a prepared batch (N, C, H, W) by a random crop of it padded by H/8
    (reflected, as airbench pads CIFAR-10: the border continues the image's own background,
    where a constant would draw a frame on black or white ones) and, with `flip`, mirror half
    of them.

    The random numbers come from the CPU `generator`, so a run is reproducible on any device.
    """
    n, c, h, w = x.shape
    pad = max(1, h // 8)
    shift = torch.randint(0, 2 * pad + 1, (2, n, 1), generator=generator).to(x.device)
    rows = (shift[0] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (shift[1] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    out = F.pad(x, (pad, pad, pad, pad), mode="reflect")[batch, channel, rows, cols]
    return mirror(out, generator) if flip else out.contiguous(memory_format=torch.channels_last)


def mirror(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A prepared batch (N, C, H, W) with a random half of its images mirrored left to right;
    the random numbers from the CPU `generator`."""
    n = len(x)
    mirrored = (torch.rand(n, generator=generator) < 0.5).to(x.device).view(n, 1, 1, 1)
    return torch.where(mirrored, x.flip(3), x).contiguous(memory_format=torch.channels_last)


def photo_augment(
    images: torch.Tensor, size: int, generator: torch.Generator, flip: bool, trivial: bool
) -> torch.Tensor:
    """uint8 photos (N, C, H, W) -> uint8 (N, C, size, size): a random-resized crop of each,
    mirrored half the time with `flip`, and with `trivial` one TrivialAugmentWide operation.

    torchvision.transforms.v2 on each image of the batch where it lies (on the device); its
    random numbers come from a seed drawn from the CPU `generator`, so a run is reproducible.
    """
    from torchvision.transforms import v2

    steps = [v2.RandomResizedCrop(size, antialias=True)]
    steps += [v2.RandomHorizontalFlip()] if flip else []
    steps += [v2.TrivialAugmentWide()] if trivial else []
    transform = v2.Compose(steps)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.stack([transform(image) for image in images])


def erase(x: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """A prepared batch with, in each image with `probability`, a random rectangle replaced by
    per-pixel normal noise (timm's RandomErasing, `pixel` mode, as timm's training recipes use).

    timm draws from Python's and torch's global generators: both are forked and seeded from the
    CPU `generator`, so a run is reproducible and its other random numbers are left as they were.
    """
    import random

    from timm.data.random_erasing import RandomErasing

    erasing = RandomErasing(probability, mode="pixel", device=x.device)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    state = random.getstate()
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        random.seed(seed)
        torch.manual_seed(seed)
        try:
            return erasing(x)
        finally:
            random.setstate(state)
