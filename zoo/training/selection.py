"""Which epoch's weights a run keeps.

The validation subset is small (up to 2,000 images), so the epoch that scores highest on it is
partly picked by its noise: it looks better there because it was chosen there. In LeNet's runs
on Fashion-MNIST the last epoch beat such an earlier pick on the test split by up to 1.3 points
(README: the best epoch, not the last, nor the luckiest). A run therefore keeps the latest
epoch that a paired test on the same validation images cannot tell below the highest-scoring
one (the record): what the schedule converged to, unless the record is clearly better, as in a
run that overfits.
"""

from __future__ import annotations

import math
from typing import Any

import torch

Z = 1.96  # McNemar's test (normal approximation), two-sided 5%
KEPT_IS = (
    "the latest epoch whose validation accuracy a paired test (McNemar's, 5%) cannot tell below "
    "the record's; the record: the highest validation accuracy, of equals the lowest loss"
)


def is_record(accuracy: float, loss: float, record: dict[str, Any]) -> bool:
    """Whether a validation score beats (or equals) the record: a higher accuracy, or the
    same with a lower loss (a checkpoint from before losses were kept has none)."""
    record_loss = math.inf if record.get("val_loss") is None else record["val_loss"]
    return (accuracy, -loss) >= (record["val_accuracy"], -record_loss)


def within_noise(record_answers: torch.Tensor | None, answers: torch.Tensor) -> bool:
    """Whether an epoch's `answers` (right or wrong, per validation image) are not below the
    record's by more than McNemar's test allows: of the images the two disagree on, the
    record's share must exceed half by more than `Z` standard errors. Without the record's
    answers for these images (a checkpoint from before they were kept), the record alone
    counts."""
    if record_answers is None or record_answers.shape != answers.shape:
        return False
    lost = int((record_answers & ~answers).sum())
    gained = int((answers & ~record_answers).sum())
    return lost - gained <= Z * math.sqrt(lost + gained)
