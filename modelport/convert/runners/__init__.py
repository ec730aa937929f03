"""Runners: execute a model on given inputs and return named outputs.

``onnxruntime`` runs converted models (and ONNX sources). Each importer names its reference
runner in its FormatSpec (the source framework, or an independent reader); reference runners
implement ``name``, ``run(feeds) -> {output: array}`` and optionally
``run_layers(feeds, layers) -> {layer: [arrays]}`` for per-layer verification.
"""
