"""PyTorch importer: drives ``torch.export`` and the dynamo-based ``torch.onnx`` exporter and
reads the result into the IR. Sources: ``.pt2`` archives, TorchScript archives, Python entry
points (``package.module:factory``) with optional ``state_dict`` weights, and (with
``--trust-code``) fully pickled modules. See docs/formats/pytorch.md."""
