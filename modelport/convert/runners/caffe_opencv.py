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
                "verification against OpenCV needs the weights (.caffemodel); with "
                "--random-weights write them first (modelport.importers.caffe.write."
                "random_caffemodel)", path=path)
        self.cv2 = cv2
        self.name = f"OpenCV DNN {cv2.__version__}"
        self._io = self._io_names(options)
        self._detections: set[str] = set()

    def _io_names(self, options) -> dict:
        """ONNX input/output names -> Caffe blob names, from a structure-only import."""
        import json

        from modelport.importers.caffe.load import IO_KEY, build
        from modelport.importers.caffe.proto import read_net
        from modelport.importers.registry import LoadOptions

        net, _ = read_net(self.prototxt)
        opts = LoadOptions(input_shapes=dict(options.input_shapes), random_weights=True,
                           outputs=options.outputs,
                           extra={"ignore_unknown_fields": True})
        model = build(net, [], None, opts, self.prototxt)
        return json.loads(model.metadata_props[IO_KEY])

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
        for layer, values in layers.items():
            if layer not in known:
                continue
            self._set_inputs(net, feeds)
            try:
                blobs = net.forwardAndRetrieve([layer])[0] if len(values) > 1 else [
                    net.forward(layer)]
            except self.cv2.error:
                continue
            if len(blobs) >= len(values):
                out[layer] = [np.asarray(b) for b in blobs[: len(values)]]
                if layer in self._detections:
                    out[layer] = [trim_detections(b) for b in out[layer]]
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
