"""Neural network modules and the model registry (imports only _core and torch)."""
