"""Reference runner for Caffe models: OpenCV DNN 4.x (``cv2.dnn.readNetFromCaffe``), an
independent reader of prototxt + caffemodel, on its plain C++ backend."""

from __future__ import annotations

import numpy as np

from modelport.errors import InvalidModelError, MissingDependencyError


class OpenCVCaffeReference:
    def __init__(self, path: str, options=None) -> None:
        try:
            import cv2
        except ImportError:
            raise MissingDependencyError("cv2 (opencv-python-headless)", "caffe",
                                         "verifying a Caffe model") from None
        from modelport.importers.caffe.load import IO_KEY, build, resolve_files  # noqa: F401
        from modelport.importers.registry import LoadOptions

        options = options or LoadOptions()
        self.prototxt, self.weights = resolve_files(path, options)
        if self.weights is None:
            raise InvalidModelError(
                "verification against OpenCV needs the weights: pass the .caffemodel with "
                "--weights (--random-weights checks the structure only and cannot be verified)",
                path=path)
        self.cv2 = cv2
        self.name = f"OpenCV DNN {cv2.__version__}"
        self._io = self._io_names(options)
        self._detections: set[str] = set()

    def _io_names(self, options) -> dict:
        """ONNX input/output names -> Caffe blob names, derived from the prototxt alone (the
        reference must not depend on the importer it checks): inputs are the declared ones,
        outputs the blobs produced and not consumed afterwards, where a blob that only
        ``Silence`` layers consume still counts as an output (as OpenCV has it)."""
        import re

        from modelport.importers.caffe.load import INPUT_TYPES, layer_active
        from modelport.importers.caffe.proto import read_net

        net, _ = read_net(self.prototxt)
        active = [layer for layer in net.layer if layer_active(layer)]
        inputs = list(net.input) + [t for layer in active if layer.type in INPUT_TYPES
                                    for t in layer.top]
        if options.outputs:
            outputs = list(options.outputs)
        else:
            order: list[str] = []
            consumed: set[str] = set()
            for layer in active:
                if layer.type in INPUT_TYPES:
                    continue
                if layer.type != "Silence":
                    consumed.update(layer.bottom)
                for top in layer.top:
                    order.append(top)
                    consumed.discard(top)
            outputs = list(dict.fromkeys(t for t in order
                                         if t not in consumed and t not in inputs))
        # ONNX value names are the blob names with characters ONNX tools dislike replaced.
        def onnx_name(blob: str) -> str:
            return re.sub(r"[^A-Za-z0-9_.:/\-]", "_", blob) or "value"

        return {"inputs": {onnx_name(b): b for b in inputs},
                "outputs": {onnx_name(b): b for b in outputs}}

    def layer_names(self) -> list[str]:
        """Every active layer that computes something (not inputs, Split or Silence)."""
        from modelport.importers.caffe.load import INPUT_TYPES, layer_active, opencv_layer_names
        from modelport.importers.caffe.proto import read_net

        net, _ = read_net(self.prototxt)
        active = [(i, layer) for i, layer in enumerate(net.layer) if layer_active(layer)]
        names = opencv_layer_names([layer.name or f"{layer.type}_{i}" for i, layer in active])
        return [n for (_, layer), n in zip(active, names)
                if layer.type not in (*INPUT_TYPES, "Split", "Silence")]

    def _net(self, fusion: bool = True):
        cv2 = self.cv2
        try:
            net = cv2.dnn.readNetFromCaffe(self.prototxt, self.weights)
        except cv2.error as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "error"
            raise InvalidModelError(f"OpenCV cannot read this net: {first}",
                                    path=self.prototxt) from None
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        if not fusion:
            net.enableFusion(False)
        return net

    def _set_inputs(self, net, feeds):
        for onnx_name, caffe_name in self._io["inputs"].items():
            if onnx_name in feeds:
                net.setInput(np.ascontiguousarray(feeds[onnx_name], dtype=np.float32), caffe_name)

    def _layer_of_blob(self, net) -> dict[str, str]:
        """The (OpenCV) name of the last layer writing each top blob."""
        from modelport.importers.caffe.load import layer_active, opencv_layer_names
        from modelport.importers.caffe.proto import read_net

        proto, _ = read_net(self.prototxt)
        active = [layer for layer in proto.layer if layer_active(layer)]
        names = opencv_layer_names([layer.name for layer in active])
        writer: dict[str, tuple[str, int]] = {}
        for layer, name in zip(active, names):
            if layer.type == "Split":
                for top in layer.top:
                    writer[top] = writer.get(layer.bottom[0], (name, 0))
                continue
            for i, top in enumerate(layer.top):
                writer[top] = (name, i)
                if layer.type == "DetectionOutput":
                    self._detections.add(name)
        return writer

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        net = self._net()
        self._set_inputs(net, feeds)
        writer = self._layer_of_blob(net)
        result = {}
        wanted = list(self._io["outputs"].items())
        simple = [(o, writer[c][0]) for o, c in wanted if writer[c][1] == 0]
        if simple:
            values = net.forward([layer for _, layer in simple])
            for (onnx_name, _), value in zip(simple, values):
                result[onnx_name] = np.asarray(value)
        for onnx_name, caffe_name in wanted:
            layer, index = writer[caffe_name]
            if index:
                self._set_inputs(net, feeds)
                result[onnx_name] = np.asarray(net.forwardAndRetrieve([layer])[0][index]) \
                    if hasattr(net, "forwardAndRetrieve") else np.asarray(
                        net.forward(layer))
        for onnx_name, caffe_name in wanted:
            if writer[caffe_name][0] in self._detections:
                result[onnx_name] = trim_detections(result[onnx_name])
        return result

    def run_layers(self, feeds, layers: dict[str, list[str]]) -> dict[str, list[np.ndarray]]:
        net = self._net(fusion=False)
        self._layer_of_blob(net)
        known = set(net.getLayerNames())
        out: dict[str, list[np.ndarray]] = {}
        self.layer_reasons: dict[str, str] = {}
        for layer, values in layers.items():
            if layer not in known:
                self.layer_reasons[layer] = "OpenCV has no layer of this name"
                continue
            self._set_inputs(net, feeds)
            try:
                blobs = net.forwardAndRetrieve([layer])[0] if len(values) > 1 else [
                    net.forward(layer)]
            except self.cv2.error as exc:
                lines = str(exc).strip().splitlines()
                self.layer_reasons[layer] = f"OpenCV failed to compute it: " \
                    f"{lines[-1] if lines else 'error'}"
                continue
            if len(blobs) >= len(values):
                out[layer] = [np.asarray(b) for b in blobs[: len(values)]]
                if layer in self._detections:
                    out[layer] = [trim_detections(b) for b in out[layer]]
            else:
                self.layer_reasons[layer] = (f"OpenCV gives {len(blobs)} values for it, the "
                                             f"converted model {len(values)}")
        return out


def trim_detections(value: np.ndarray) -> np.ndarray:
    """OpenCV's DetectionOutput layout turned into Caffe's.

    OpenCV pads the output to keep_top_k rows of zeros and, when keep_top_k cuts, orders the
    rows by score; Caffe writes only the kept rows, grouped by image and label (each label's
    rows by descending score), and a single (0, -1, ..., -1) row when nothing is kept.
    """
    value = np.asarray(value)
    if value.ndim != 4 or value.shape[-1] != 7:
        return value
    rows = value.reshape(-1, 7)
    real = ~np.all(rows == 0, axis=1)
    count = int(np.max(np.nonzero(real)[0]) + 1) if real.any() else 0
    rows = rows[:count]
    if count == 0:
        rows = np.asarray([[0, -1, -1, -1, -1, -1, -1]], dtype=value.dtype)
    else:
        rows = rows[np.lexsort((-rows[:, 2], rows[:, 1], rows[:, 0]))]
    return rows.reshape(1, 1, -1, 7)


def reference(path: str, options=None, device: str = "cpu") -> OpenCVCaffeReference:
    return OpenCVCaffeReference(path, options)
