"""Each epoch's order of the training images: a shuffle, or with `--balance` a class-balanced
draw (with replacement: every class as likely, whatever its share of the images)."""

from __future__ import annotations

import torch


def epoch_order(labels: torch.Tensor, generator: torch.Generator, balance: bool) -> torch.Tensor:
    """An epoch's order of the indices of `labels`, drawn from the CPU `generator` (the same
    in every process, which then take their shards of it): a permutation, or with `balance`
    as many indices drawn with probabilities inversely proportional to their class's count."""
    if not balance:
        return torch.randperm(len(labels), generator=generator)
    labels = labels.cpu()
    weights = (1.0 / torch.bincount(labels).double())[labels]
    return torch.multinomial(weights, len(labels), replacement=True, generator=generator)
