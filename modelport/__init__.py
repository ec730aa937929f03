"""modelport: convert trained models to ONNX, natively, and prove the result computes the same.

Public API::

    import modelport
    model = modelport.load("model.h5")                 # onnx_ir.Model
    modelport.save(model, "model.onnx")                # checked, deterministic ONNX
    result = modelport.convert("model.h5", "model.onnx", verify=True)
    report = modelport.verify("model.h5", "model.onnx")
"""

from modelport._version import __version__  # the one definition: modelport/_version.py

# Light on purpose: the API modules import onnx_ir (and with it SymPy) only when called, so
# the command line can defer rarely used modules (modelport._deferred) first, while a library
# user's process is left as it is (`import modelport` changes no other library's modules).
from modelport.convert.api import convert, load, save, verify  # noqa: E402

__all__ = ["__version__", "convert", "load", "save", "verify"]
