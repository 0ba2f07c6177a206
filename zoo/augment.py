"""Batch-level augmentation on the device: a random padded crop and a random horizontal flip."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, generator: torch.Generator, flip: bool) -> torch.Tensor:
    """Shift each image of a prepared batch (N, C, H, W) by a random crop of it padded by H/8
    (zeros, the mean colour after normalisation) and, with `flip`, mirror half of them.

    The random numbers come from the CPU `generator`, so a run is reproducible on any device.
    """
    n, c, h, w = x.shape
    pad = max(1, h // 8)
    shift = torch.randint(0, 2 * pad + 1, (2, n, 1), generator=generator).to(x.device)
    rows = (shift[0] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (shift[1] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    out = F.pad(x, (pad, pad, pad, pad))[batch, channel, rows, cols]
    if flip:
        mirrored = (torch.rand(n, generator=generator) < 0.5).to(x.device).view(n, 1, 1, 1)
        out = torch.where(mirrored, out.flip(3), out)
    return out.contiguous(memory_format=torch.channels_last)
