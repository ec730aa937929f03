"""Reference runner for Torch7 models: OpenCV DNN 4.x (``cv2.dnn.readNetFromTorch``), an
independent reader of ``.t7`` files, on its plain C++ backend.

OpenCV reads a subset of ``nn`` and takes some modules its own way, so this reference only
judges nets made of the modules listed in :data:`OPENCV_MODULES` (each checked against
OpenCV by the test suite); for any other (``nngraph`` graphs, ELU, LeakyReLU, ...) it says
that it cannot judge the model instead of comparing against something else.
"""

from __future__ import annotations

import numpy as np

from modelport.errors import InvalidModelError, MissingDependencyError, ModelportError

# Modules whose OpenCV translation follows Torch7 (tests/importers/torch7 compares each).
OPENCV_MODULES = {
    "nn.Sequential", "nn.Concat", "nn.DepthConcat", "nn.ConcatTable", "nn.JoinTable",
    "nn.CAddTable", "nn.Identity", "nn.SpatialConvolution", "nn.SpatialConvolutionMM",
    "nn.SpatialDilatedConvolution", "nn.SpatialFullConvolution", "nn.Linear",
    "nn.SpatialMaxPooling", "nn.SpatialAveragePooling", "nn.SpatialBatchNormalization",
    "nn.BatchNormalization", "nn.ReLU", "nn.PReLU", "nn.Tanh", "nn.Sigmoid", "nn.SoftMax",
    "nn.LogSoftMax", "nn.Dropout", "nn.View", "nn.Reshape", "nn.Padding",
    "nn.SpatialZeroPadding", "nn.SpatialReflectionPadding", "nn.SpatialCrossMapLRN",
    "nn.MulConstant", "nn.Normalize", "nn.Square", "nn.Sqrt", "nn.Power",
    "nn.InstanceNormalization", "nn.SpatialUpSamplingNearest",
}


class CannotJudgeError(ModelportError):
    """The reference cannot reproduce this model's semantics."""


class OpenCVTorchReference:
    def __init__(self, path: str, options=None) -> None:
        try:
            import cv2
        except ImportError:
            raise MissingDependencyError("cv2 (opencv-python-headless)", "torch7",
                                         "verifying a Torch7 model") from None
        from modelport.importers.torch7.load import canonical, find_model, walk
        from modelport.importers.torch7.reader import load as read_file

        root, info = read_file(path)
        model = find_model(root, path)
        found = list(walk(model, path))
        others = sorted({canonical(o.class_name) for o in found} - OPENCV_MODULES)
        others += sorted({"nn.JoinTable with nInputDims" for o in found
                          if canonical(o.class_name) == "nn.JoinTable"
                          and o.get("nInputDims") is not None})  # OpenCV ignores it
        if others:
            raise CannotJudgeError(
                f"OpenCV DNN cannot judge this model: it does not read {', '.join(others)} the "
                "way Torch7 computes them; convert without --verify (the test suite checks "
                "these modules against NumPy definitions)", path=path)
        self.cv2 = cv2
        self.path = path
        self.binary = not info["ascii"]
        if info["long_size"] != 8:
            raise CannotJudgeError("OpenCV DNN reads only files with 8-byte longs; this one "
                                   "has 4-byte longs", path=path)
        self.name = f"OpenCV DNN {cv2.__version__}"
        self._shape = None
        dims = (options.input_shapes.get("input") if options is not None else None)
        if dims:
            # Torch drops the batch axis where OpenCV keeps it (a View to one vector): the
            # converted model's output shape, from a structure-only import, is the one to give.
            from modelport.importers.torch7.load import build

            built = build(model, options, path, info)
            self._shape = tuple(int(d) for d in built.graph.outputs[0].shape.dims)

    def _net(self):
        cv2 = self.cv2
        try:
            net = cv2.dnn.readNetFromTorch(self.path, self.binary)
        except cv2.error as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "error"
            raise InvalidModelError(f"OpenCV cannot read this model: {first}",
                                    path=self.path) from None
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        return net

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        net = self._net()
        net.setInput(np.ascontiguousarray(feeds["input"], dtype=np.float32))
        out = np.asarray(net.forward())
        if self._shape is not None and out.shape != self._shape and \
                out.size == int(np.prod(self._shape)) and \
                [d for d in out.shape if d != 1] == [d for d in self._shape if d != 1]:
            out = out.reshape(self._shape)  # only size-1 axes differ
        return {"output": out}


def reference(path: str, options=None, device: str = "cpu") -> OpenCVTorchReference:
    return OpenCVTorchReference(path, options)
