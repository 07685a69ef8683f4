"""The training engine: Lightning loop, callbacks, checkpoints, cross-validation."""
