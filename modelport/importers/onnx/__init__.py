"""ONNX importer: reads ``.onnx`` files (with external data) into the IR."""
