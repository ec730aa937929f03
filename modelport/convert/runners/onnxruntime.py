"""onnxruntime runner: CPU always; CUDA or TensorRT execution providers with ``device``."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import onnx

from modelport.errors import InvalidModelError, MissingDependencyError, ModelportError, first_line

DEVICES = ("cpu", "cuda", "tensorrt")

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.str_,
}


def providers_for(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    wanted = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}[device]
    if wanted not in available:
        raise MissingDependencyError(
            "onnxruntime-gpu with a visible GPU", "gpu", f"--device {device}"
        )
    chain = [wanted]
    if device == "tensorrt" and "CUDAExecutionProvider" in available:
        chain.append("CUDAExecutionProvider")
    return [*chain, "CPUExecutionProvider"]


def add_outputs(proto: onnx.ModelProto, names: Sequence[str]) -> list[str]:
    """Expose intermediate values as graph outputs; returns the names that could be exposed."""
    existing = {o.name for o in proto.graph.output}
    infos = {vi.name: vi for vi in proto.graph.value_info}
    missing = [n for n in names if n not in existing and n not in infos]
    if missing:
        try:
            inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False)
            infos.update({vi.name: vi for vi in inferred.graph.value_info})
        except Exception:
            pass
    exposed = []
    for name in names:
        if name in existing:
            exposed.append(name)
        elif name in infos and infos[name].type.HasField("tensor_type"):
            proto.graph.output.append(infos[name])
            existing.add(name)
            exposed.append(name)
    return exposed


class OrtRunner:
    """Runs an ONNX file (or ModelProto) in onnxruntime."""

    def __init__(
        self,
        model: str | os.PathLike | onnx.ModelProto,
        *,
        device: str = "cpu",
        extra_outputs: Sequence[str] = (),
        optimize: bool = True,
    ) -> None:
        import onnxruntime as ort

        self.device = device
        self.providers = providers_for(device)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if not optimize:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        source = model
        self.exposed: list[str] = []
        if extra_outputs:
            proto = model if isinstance(model, onnx.ModelProto) else onnx.load(os.fspath(model))
            proto = onnx.ModelProto.FromString(proto.SerializeToString())
            self.exposed = add_outputs(proto, extra_outputs)
            source = proto
        where = os.fspath(model) if not isinstance(model, onnx.ModelProto) else None
        # No silent fallback: onnxruntime would otherwise print "EP Error" on stdout (breaking
        # --json) and go on with the next provider, so that --device tensorrt measured CUDA.
        fallback = {"enable_fallback": 0} if device != "cpu" else {}
        try:
            data = source.SerializeToString() if isinstance(source, onnx.ModelProto) else (
                os.fspath(source))
            with warnings.catch_warnings():
                # the provider check below says it in one line, without the file name of a
                # temporary copy
                warnings.filterwarnings("ignore", "Specified provider", UserWarning)
                self.session = ort.InferenceSession(data, options, providers=self.providers,
                                                    **fallback)
        except Exception as exc:
            first = first_line(exc)
            raise ModelportError(f"onnxruntime cannot load the model: {first}", path=where) from exc
        used = self.session.get_providers()[0]
        if used != self.providers[0]:
            # an execution provider whose libraries (TensorRT's, CUDA's) fail to load is dropped
            # with a log line only
            raise ModelportError(
                f"--device {device}: onnxruntime did not start {self.providers[0]} (its libraries "
                f"are missing or do not match) and would run on {used}; install them, or verify "
                "with another --device")
        import onnxruntime

        self.name = f"onnxruntime {onnxruntime.__version__} ({self.session.get_providers()[0]})"

    def input_specs(self) -> list[tuple[str, np.dtype, list]]:
        specs = []
        for i in self.session.get_inputs():
            dtype = _ORT_TYPES.get(i.type)
            if dtype is None:
                raise InvalidModelError(f"input {i.name!r} has type {i.type}, which verification cannot feed")
            specs.append((i.name, np.dtype(dtype), list(i.shape)))
        return specs

    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def run(
        self, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        names = list(outputs) if outputs is not None else self.output_names()
        try:
            values = self.session.run(names, feeds)
        except Exception as exc:
            first = first_line(exc)
            raise ModelportError(f"onnxruntime failed to run the model: {first}") from exc
        return dict(zip(names, values))


class OnnxReference:
    """Reference for ONNX sources: the original file in onnxruntime, without its optimisations."""

    def __init__(self, path: str, options=None, *, device: str = "cpu") -> None:
        self.path = path
        # The reference stays independent of the converted side: whatever --device the
        # converted model runs on, the original runs on the CPU.
        self.device = "cpu"
        # With --output, the converted model's outputs are values inside the original graph.
        self.outputs = list(options.outputs) if options is not None and options.outputs else None
        self._runner = OrtRunner(path, device=self.device, optimize=False,
                                 extra_outputs=self.outputs or ())
        self.name = self._runner.name + " on the original"

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.outputs:
            return self._runner.run(feeds, [n for n in self.outputs if n in self._runner.exposed])
        return self._runner.run(feeds)

    def run_layers(
        self, feeds: dict[str, np.ndarray], layers: dict[str, list[str]]
    ) -> dict[str, list[np.ndarray]]:
        names = [n for values in layers.values() for n in values]
        runner = OrtRunner(self.path, device=self.device, extra_outputs=names, optimize=False)
        exposed = set(runner.exposed)
        wanted = [n for n in names if n in exposed]
        out = runner.run(feeds, wanted)
        return {
            layer: [out[n] for n in values]
            for layer, values in layers.items()
            if all(n in exposed for n in values)
        }


def reference_for_onnx(path: str, options=None, device: str = "cpu") -> OnnxReference:
    return OnnxReference(path, options, device=device)
