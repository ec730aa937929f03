"""``modelport build-engine``: an ONNX file to a serialized TensorRT engine, through the
``tensorrt`` Python package (imported here only, when an engine is built).

The optimisation profile of the dynamic inputs comes, in this order, from ``--input-range``,
from the sidecar that ``convert --target tensorrt`` wrote (``--profile FILE``, else
``MODEL.trt.json`` beside the model when there is one), and otherwise from the defaults the
sidecar states (dynamic dims: min 1, opt 1, max 32).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

from modelport.errors import InvalidModelError, MissingDependencyError, ModelportError

DEFAULT_MIN, DEFAULT_OPT, DEFAULT_MAX = 1, 1, 32


@dataclasses.dataclass
class EngineResult:
    path: str
    bytes: int
    tensorrt: str
    profile: dict[str, dict[str, list[int]]]
    profile_source: str
    notes: list[str]


def default_sidecar(model_path: str) -> str:
    return re.sub(r"\.onnx$", "", os.fspath(model_path)) + ".trt.json"


def default_output(model_path: str) -> str:
    return re.sub(r"\.onnx$", "", os.fspath(model_path)) + ".engine"


def read_profile(path: str) -> dict[str, tuple[list[int], list[int], list[int]]]:
    """The ``profile`` of a sidecar written by ``convert --target tensorrt``."""
    try:
        with open(path) as f:
            doc = json.load(f)
        profile = doc["profile"]
        return {name: (list(map(int, p["min"])), list(map(int, p["opt"])),
                       list(map(int, p["max"])))
                for name, p in profile.items()}
    except OSError as exc:
        raise InvalidModelError(f"cannot read the profile: {exc.strerror or exc}",
                                path=path) from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InvalidModelError("not a sidecar written by convert --target tensorrt (no "
                                "'profile' of min/opt/max shapes)", path=path) from None


def import_tensorrt() -> Any:
    """The ``tensorrt`` package, or a one-line error saying it is missing."""
    try:
        import tensorrt
    except ImportError:
        raise MissingDependencyError("tensorrt", "core", "build-engine") from None
    return tensorrt


def _collecting_logger(trt: Any) -> Any:
    """A TensorRT logger that keeps errors instead of printing them, so that a failure is
    reported in one line."""

    class Collecting(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):  # noqa: ANN001 (TensorRT's callback)
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(" ".join(str(msg).split()))

        def last(self, sep: str) -> str:
            return sep + self.errors[-1] if self.errors else ""

    return Collecting()


def _profile_for(inputs: list[tuple[str, list[int]]], ranges: dict, notes: list[str]):
    prof: dict[str, dict[str, list[int]]] = {}
    for name, dims in inputs:
        if name in ranges:
            lo, opt, hi = ranges[name]
            if len(lo) != len(dims):
                raise ModelportError(f"profile for {name!r}: rank {len(lo)}, the input has "
                                     f"rank {len(dims)}")
            prof[name] = {"min": list(lo), "opt": list(opt), "max": list(hi)}
        elif any(d < 0 for d in dims):
            prof[name] = {key: [d if d >= 0 else n for d in dims]
                          for key, n in (("min", DEFAULT_MIN), ("opt", DEFAULT_OPT),
                                         ("max", DEFAULT_MAX))}
            notes.append(f"{name}: no range given; dynamic dims use min {DEFAULT_MIN}, opt "
                         f"{DEFAULT_OPT}, max {DEFAULT_MAX}")
    unknown = sorted(set(ranges) - {name for name, _ in inputs})
    if unknown:
        raise ModelportError(f"profile names inputs the model does not have: "
                             f"{', '.join(unknown)} (inputs: "
                             f"{', '.join(name for name, _ in inputs)})")
    return prof


def build_engine(model_path: str, output: str | None = None, *,
                 ranges: dict | None = None, profile_file: str | None = None,
                 fp16: bool = False, force: bool = False) -> EngineResult:
    from modelport.exporters.atomic import atomic_outputs

    model_path = os.fspath(model_path)
    if not os.path.isfile(model_path):
        raise InvalidModelError("no such file", path=model_path)
    output = output or default_output(model_path)
    sidecar = profile_file or (default_sidecar(model_path)
                               if os.path.isfile(default_sidecar(model_path)) else None)
    merged = dict(read_profile(sidecar)) if sidecar else {}
    merged.update(ranges or {})
    source = ", ".join(filter(None, ["--input-range" if ranges else None, sidecar])) or \
        "defaults"
    trt = import_tensorrt()
    version = trt.__version__
    major = int(version.split(".")[0])
    if fp16 and not hasattr(trt.BuilderFlag, "FP16"):
        raise ModelportError(f"--fp16: TensorRT {version} builds strongly typed networks and "
                             "has no FP16 flag; convert the model's tensors to float16 instead")
    logger = _collecting_logger(trt)
    try:
        builder = trt.Builder(logger)
    except (TypeError, RuntimeError):  # no CUDA device: the factory returns nothing
        builder = None
    if builder is None:
        raise ModelportError(f"TensorRT {version} cannot start a builder (no usable NVIDIA GPU)"
                             + logger.last(": "))
    flags = 0
    if major < 10:  # implicit batch was the default before 10
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(model_path):
        errors = []
        for i in range(parser.num_errors):
            e = parser.get_error(i)
            where = ""
            if hasattr(e, "node_name") and e.node_name():
                where = f"node {e.node_name()!r} ({e.node_operator()}): "
            errors.append(where + str(e.desc()).splitlines()[0])
        shown = "; ".join(errors[:3]) + (f" and {len(errors) - 3} more" if len(errors) > 3
                                          else "")
        raise ModelportError(f"TensorRT {version}'s ONNX parser rejects the model: {shown} "
                             "(modelport check MODEL --target tensorrt lists what to fix)",
                             path=model_path)
    inputs = []
    for i in range(network.num_inputs):
        t = network.get_input(i)
        inputs.append((t.name, [int(d) for d in t.shape]))
    notes: list[str] = []
    prof = _profile_for(inputs, merged, notes)
    config = builder.create_builder_config()
    if prof:
        opt_profile = builder.create_optimization_profile()
        for name, p in prof.items():
            opt_profile.set_shape(name, p["min"], p["opt"], p["max"])
        config.add_optimization_profile(opt_profile)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelportError(f"TensorRT {version} could not build an engine from the model"
                             + logger.last(": "), path=model_path)
    data = bytes(serialized)
    with atomic_outputs([output], force=force, sources=[model_path]) as temps:
        with open(temps[os.path.abspath(output)], "wb") as f:
            f.write(data)
    return EngineResult(output, len(data), version, prof, source, notes)
