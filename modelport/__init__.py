"""modelport: convert trained models to ONNX, natively, and prove the result computes the same.

Public API::

    import modelport
    model = modelport.load("model.h5")                 # onnx_ir.Model
    modelport.save(model, "model.onnx")                # checked, deterministic ONNX
    result = modelport.convert("model.h5", "model.onnx", verify=True)
    report = modelport.verify("model.h5", "model.onnx")
"""

__version__ = "0.1.0"

from modelport._deferred import defer_rarely_used  # noqa: E402

defer_rarely_used()

from modelport.convert.api import convert, load, save, verify  # noqa: E402

__all__ = ["__version__", "convert", "load", "save", "verify"]
