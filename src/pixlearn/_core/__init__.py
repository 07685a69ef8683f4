"""Core types, errors, checks and name registries shared by every layer (no torch, no cv2)."""
