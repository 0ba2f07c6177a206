"""Serving trained weights: `Classifier` (a weights file as a ready model), `zoo predict` and
`zoo explain` over files, `zoo export` with its parity check, and pretrained weights."""
