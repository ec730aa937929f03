"""Exporters: from the IR to files. ``onnx`` writes ONNX."""
