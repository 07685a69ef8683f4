"""ONNX export, quantization and inference backends."""
