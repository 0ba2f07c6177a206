"""How far to trust a model and its answers: metrics, calibration, the unknown-input detector,
explanations, error analysis, the post-hoc fit after training, `zoo eval`, and introspection."""
