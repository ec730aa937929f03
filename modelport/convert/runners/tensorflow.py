"""Reference runner for TensorFlow graphs: the frozen GraphDef run by TensorFlow in a v1
Session, or the SavedModel's signature function called by TensorFlow. Only verification
imports TensorFlow; conversion never does.

Per-layer verification (GraphDefs) fetches each TF node's outputs by name: ONNX nodes record
the TF node they came from in ``modelport.source``.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from modelport.errors import InvalidModelError, MissingDependencyError, ModelportError, first_line

_NAME_SAFE = re.compile(r"[^A-Za-z0-9_.:/\-]")  # as GraphBuilder makes ONNX names


def _onnx_name(name: str) -> str:
    return _NAME_SAFE.sub("_", name) or "value"


def _tensor(name: str) -> str:
    return name if re.search(r":\d+$", name) else name + ":0"


class TensorFlowReference:
    def __init__(self, path: str, options: Any = None, *, device: str = "cpu") -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            import tensorflow as tf
        except ImportError:
            raise MissingDependencyError("tensorflow", "tensorflow",
                                         "verifying a TensorFlow model") from None
        from modelport.importers.registry import LoadOptions
        from modelport.importers.tensorflow.source import read_source

        self.tf = tf
        self.options = options or LoadOptions()
        self.source = read_source(path, self.options)
        self.path = path
        self.name = f"TensorFlow {tf.__version__}"
        self.inputs = {_onnx_name(t.name): t for t in self.source.inputs}
        self.outputs = {_onnx_name(t.name): t for t in self.source.outputs}
        if self.source.kind == "SavedModel":
            self._load_saved_model()
        else:
            self._load_graph()

    def _load_graph(self) -> None:
        tf = self.tf
        graph_def = tf.compat.v1.GraphDef()
        with open(self.path, "rb") as f:
            data = f.read()
        from modelport.importers.tensorflow.source import looks_like_text

        try:
            if looks_like_text(data[:4096]):
                from google.protobuf import text_format

                text_format.Parse(data.decode("utf-8"), graph_def)
            else:
                graph_def.ParseFromString(data)
            self.graph = tf.Graph()
            with self.graph.as_default():
                tf.compat.v1.import_graph_def(graph_def, name="")
        except Exception as exc:
            first = first_line(exc)
            raise ModelportError(f"TensorFlow cannot load the graph: {first}",
                                 path=self.path) from exc
        self.session = tf.compat.v1.Session(graph=self.graph)

    def _load_saved_model(self) -> None:
        tf = self.tf
        directory = self.path if os.path.isdir(self.path) else os.path.dirname(self.path)
        try:
            self.loaded = tf.saved_model.load(directory)
        except Exception as exc:
            first = first_line(exc)
            raise ModelportError(f"TensorFlow cannot load the SavedModel: {first}",
                                 path=self.path) from exc
        signature = self.options.extra.get("signature")
        sigs = self.loaded.signatures
        if signature is None:
            signature = "serving_default" if "serving_default" in sigs else next(iter(sigs))
        if signature not in sigs:
            raise InvalidModelError(f"the SavedModel has no signature {signature!r}",
                                    path=self.path)
        self.function = sigs[signature]

    def _feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for name, t in self.inputs.items():
            if name in feeds:
                out[t.tensor if self.source.kind == "SavedModel" else _tensor(t.tensor)] = \
                    feeds[name]
        return out

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.source.kind == "SavedModel":
            tf = self.tf
            kwargs = {t.name: tf.constant(feeds[n]) for n, t in self.inputs.items() if n in feeds}
            result = self.function(**kwargs)
            return {n: np.asarray(result[t.name]) for n, t in self.outputs.items()}
        names = list(self.outputs)
        fetches = [_tensor(self.outputs[n].tensor) for n in names]
        values = self.session.run(fetches, self._feeds(feeds))
        return dict(zip(names, [np.asarray(v) for v in values]))

    def run_layers(self, feeds: dict[str, np.ndarray],
                   layers: dict[str, list[str]]) -> dict[str, list[np.ndarray]]:
        if self.source.kind == "SavedModel":
            return {}  # the signature function's inner tensors cannot be fetched
        wanted: dict[str, list[str]] = {}
        for layer, values in layers.items():
            try:
                op = self.graph.get_operation_by_name(layer)
            except (KeyError, ValueError):
                continue
            if len(op.outputs) >= len(values):
                wanted[layer] = [t.name for t in op.outputs[: len(values)]]
        flat = [t for ts in wanted.values() for t in ts]
        if not flat:
            return {}
        values = self.session.run(flat, self._feeds(feeds))
        out, i = {}, 0
        for layer, ts in wanted.items():
            out[layer] = [np.asarray(v) for v in values[i: i + len(ts)]]
            i += len(ts)
        return out


def reference(path: str, options: Any = None, device: str = "cpu") -> TensorFlowReference:
    return TensorFlowReference(path, options, device=device)
