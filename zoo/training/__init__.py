"""Training: `zoo train`'s options (`config`), its loop, and what the loop uses: optimizers,
fine-tune strategies, cached features, checkpoints, the run folder, torchrun, TOML settings."""
