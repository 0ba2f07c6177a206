"""Calibrated confidence: temperature scaling (Guo et al., 2017), fitted on held-out logits by
minimising the negative log-likelihood, and the measures that check it (ECE, NLL, the
reliability diagram's bins)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.header import TEMPERATURE

BINS = 15


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature T > 0 that minimises the NLL of softmax(logits / T) on `labels`,
    within the range a weights file may carry (`zoo.header.TEMPERATURE`)."""
    logits, labels = logits.detach().float().cpu(), labels.cpu()
    log_t = torch.zeros(1, requires_grad=True)  # T = exp(log_t) stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    low, high = TEMPERATURE  # all held-out images right: the NLL falls on as T goes to 0
    return min(max(float(log_t.detach().exp()), low), high)


def nll(probabilities: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log-likelihood of the true classes."""
    true = probabilities.gather(1, labels.view(-1, 1))[:, 0]
    return float(-true.clamp_min(1e-12).log().mean())


def reliability(
    probabilities: torch.Tensor, labels: torch.Tensor, bins: int = BINS
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per confidence bin (equal widths over [0, 1]): image count, mean confidence, accuracy."""
    confidence, predicted = probabilities.max(1)
    correct = (predicted == labels).float()
    index = (confidence * bins).long().clamp_(max=bins - 1)
    counts = torch.bincount(index, minlength=bins).float()
    sums = torch.bincount(index, weights=confidence, minlength=bins)
    hits = torch.bincount(index, weights=correct, minlength=bins)
    safe = counts.clamp_min(1)
    return counts, sums / safe, hits / safe


def ece(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> float:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| over bins."""
    counts, confidence, accuracy = reliability(probabilities, labels, bins)
    return float((counts * (accuracy - confidence).abs()).sum() / counts.sum())
