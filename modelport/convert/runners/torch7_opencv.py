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
        from modelport.graph_ir import layer_outputs
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
        self._layer_shapes: dict[str, tuple[int, ...]] = {}
        dims = (options.input_shapes.get("input") if options is not None else None)
        if dims:
            # Torch drops the batch axis where OpenCV keeps it (a View to one vector): the
            # converted model's output shape, from a structure-only import, is the one to give.
            from modelport.importers.torch7.load import build

            built = build(model, options, path, info)
            self._shape = tuple(int(d) for d in built.graph.outputs[0].shape.dims)
            self._layer_shapes = {
                layer: tuple(int(d) for d in values[-1].shape.dims)
                for layer, values in layer_outputs(built.graph).items() if values}
        self._opencv_names = opencv_layer_names(model)

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
        return {"output": _like(np.asarray(net.forward()), self._shape)}

    def run_layers(self, feeds, layers: dict[str, list[str]]) -> dict[str, list[np.ndarray]]:
        """Outputs of OpenCV's layers for modelport's layers (Torch modules), by OpenCV's
        naming of the modules (``l<n>_<type>``, numbered the way its importer walks them)."""
        net = self._net()
        net.enableFusion(False)
        known = set(net.getLayerNames())
        out: dict[str, list[np.ndarray]] = {}
        for layer, values in layers.items():
            name = self._opencv_names.get(layer)
            if name not in known or len(values) != 1:
                continue
            net.setInput(np.ascontiguousarray(feeds["input"], dtype=np.float32))
            try:
                value = np.asarray(net.forward(name))
            except self.cv2.error:
                continue
            out[layer] = [_like(value, self._layer_shapes.get(layer))]
        return out


def _like(value: np.ndarray, shape) -> np.ndarray:
    """OpenCV keeps batch and trailing size-1 axes that Torch drops: reshape when only those
    differ."""
    if shape is not None and value.shape != tuple(shape) and \
            value.size == int(np.prod(shape, dtype=np.int64)) and \
            [d for d in value.shape if d != 1] == [d for d in shape if d != 1]:
        return value.reshape(shape)
    return value


_API_TYPES = {
    "nn.SpatialConvolution": "Convolution", "nn.SpatialConvolutionMM": "Convolution",
    "nn.SpatialDilatedConvolution": "Convolution", "nn.SpatialFullConvolution": "Deconvolution",
    "nn.SpatialMaxPooling": "Pooling", "nn.SpatialAveragePooling": "Pooling",
    "nn.Linear": "InnerProduct", "nn.View": "Reshape", "nn.Reshape": "Reshape",
    "nn.ReLU": "ReLU", "nn.Tanh": "TanH", "nn.Sigmoid": "Sigmoid",
    "nn.BatchNormalization": "BatchNorm", "nn.SpatialBatchNormalization": "BatchNorm",
    "nn.Identity": "Identity", "nn.Normalize": "Normalize", "nn.Padding": "Padding",
    "nn.SpatialZeroPadding": "Padding", "nn.SpatialReflectionPadding": "Padding",
    "nn.SoftMax": "SoftMax", "nn.LogSoftMax": "SoftMax", "nn.SpatialCrossMapLRN": "LRN",
    "nn.Square": "Power", "nn.Sqrt": "Power", "nn.Power": "Power", "nn.MulConstant": "Power",
}


def opencv_layer_names(model) -> dict[str, str]:
    """modelport's layer name of each module -> the name OpenCV's Torch importer gives it.

    Both number the modules as they walk the tree: modelport every module (``Type_<k>``, in
    the order the importer translates them), OpenCV the layers it adds (``l<n>_<type>``, with
    the extra steps its importer takes for merges and tables).
    """
    from modelport.importers.torch7.load import canonical

    names: dict[str, str] = {}
    ours = {"n": 0, "seen": {}}
    cv = {"n": 0}

    def our_name(obj) -> str:
        key = id(obj)
        if key not in ours["seen"]:
            ours["n"] += 1
            ours["seen"][key] = f"{canonical(obj.class_name).split('.')[-1]}_{ours['n']}"
        return ours["seen"][key]

    def cv_name(api: str) -> str:
        cv["n"] += 1
        return f"l{cv['n']}_{api}"

    def visit(obj) -> None:
        mine = our_name(obj)
        kind = canonical(obj.class_name)
        modules = obj.get("modules")
        children = modules.array() if hasattr(modules, "array") else []
        if kind in ("nn.Sequential", "nn.Inception"):
            for child in children:
                visit(child)
        elif kind in ("nn.Concat", "nn.DepthConcat"):
            for child in children:
                visit(child)
            if kind == "nn.Concat":
                cv["n"] += 1  # OpenCV skips a number for the split it no longer adds
            names[mine] = cv_name("torchMerge")
        elif kind == "nn.ConcatTable":
            cv["n"] += 1
            for child in children:
                visit(child)
        elif kind == "nn.JoinTable":
            names[mine] = cv_name("torchMerge")
        elif kind == "nn.CAddTable":
            names[mine] = cv_name("torchCAddTable")
        elif kind == "nn.InstanceNormalization":
            cv_name("MVN")
            names[mine] = cv_name("BatchNorm")
        elif kind == "nn.PReLU":
            shared = not obj.get("nOutputPlane")
            names[mine] = cv_name("ReLU" if shared else "ChannelsPReLU")
        elif kind in ("nn.Dropout", "nn.SpatialDropout"):
            v2 = kind == "nn.Dropout" and obj.get("v2") is True
            names[mine] = cv_name("Identity" if v2 else "Power")
        else:
            names[mine] = cv_name(_API_TYPES.get(kind, kind.split(".")[-1]))

    visit(model)
    return names


def reference(path: str, options=None, device: str = "cpu") -> OpenCVTorchReference:
    return OpenCVTorchReference(path, options)
