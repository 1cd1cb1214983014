"""Offline data preparation, run once before training (as BasicSR's scripts/data_preparation/):
LRS2-style videos to the preprocessed layout (`lrs2`) and synthetic talking faces (`synthetic`).
Training reads the results through `ppgan.datasets`."""
