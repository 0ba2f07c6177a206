"""Data: the datasets by name, their loaders and on-disk cache, and the one place pixels become
model input (`preprocess`) and are augmented (`augment`)."""
