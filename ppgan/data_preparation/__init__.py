"""Offline data preparation, run once before training (as BasicSR's scripts/data_preparation/):
LRS2-style videos to the preprocessed layout (`lrs2`), synthetic talking faces (`synthetic`), and
the sample inputs the tests and the benchmark make on the fly (`samples`). Training reads the
results through `ppgan.datasets`."""
