"""Datasets into Samples, transforms, splits, checks and built-in samples."""
