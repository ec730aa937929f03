"""Reference runner for Keras models: the model loaded by Keras itself.

Files saved by Keras 2 are run by ``tf_keras`` when it is installed (the same code that wrote
them), otherwise by Keras 3; Keras 3 files by Keras 3. Only verification imports Keras;
conversion never does.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from modelport.errors import MissingDependencyError, ModelportError

# Testing hook: with this variable set to 1, Keras 3 on TensorFlow behaves as if TensorFlow's
# CPU kernels could not run a model with channels_first layers (as on machines without
# oneDNN), so the torch-backend path below runs on every machine. It is read from the
# environment, so it reaches a `modelport` child process too.
SIMULATE_NO_NCHW_ENV = "MODELPORT_KERAS_TF_NO_CHANNELS_FIRST"


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor (Keras 3 on its torch backend)
        return x.detach().cpu().numpy()
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x)


def _flat(x: Any) -> list:
    if isinstance(x, dict):
        return [v for k in x for v in _flat(x[k])]
    if isinstance(x, (list, tuple)):
        return [v for item in x for v in _flat(item)]
    return [x]


class KerasReference:
    def __init__(self, path: str, options: Any = None, *, device: str = "cpu") -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from modelport.importers.keras.load import input_names, output_names
        from modelport.importers.keras.model import open_keras, parse_model

        weights = getattr(options, "weights", None)
        kf = open_keras(path, weights)
        try:
            spec = parse_model(kf.config)
            self.keras2 = kf.keras_version.startswith(("1", "2"))
        finally:
            for h in kf.handles:
                h.close()
        self.inputs = input_names(spec)
        self.outputs = output_names(spec)
        self.int_high = _vocab(kf.config)
        trust = bool(getattr(options, "trust_code", False))
        self.path, self.weights, self.trust = path, weights, trust
        self.keras, self.model = self._load(path, weights, trust)
        self.name = f"{'tf_keras' if self.keras.__name__ == 'tf_keras' else 'Keras'} " \
                    f"{self.keras.__version__}"

    def _load(self, path: str, weights: str | None, trust: bool):
        keras = None
        if self.keras2:
            try:
                import tf_keras as keras
            except ImportError:
                keras = None
        if keras is None:
            try:
                import keras
            except ImportError as exc:
                raise MissingDependencyError("keras", "keras", "verifying a Keras model") from exc
        try:
            if path.lower().endswith(".json"):
                with open(path) as f:
                    model = keras.models.model_from_json(f.read())
                if weights:
                    model.load_weights(weights)
                return keras, model
            kwargs = {"compile": False}
            if keras.__name__ == "keras":
                kwargs["safe_mode"] = not trust
            model = keras.models.load_model(path, **kwargs)
            if weights:
                model.load_weights(weights)
            return keras, model
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelportError(f"{keras.__name__} cannot load the model: {first}",
                                 path=path) from exc

    def _call(self, model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if os.environ.get(SIMULATE_NO_NCHW_ENV) == "1" and self._on_tensorflow() and \
                _has_channels_first(self.model):
            raise RuntimeError(
                f"UnimplementedError (simulated by {SIMULATE_NO_NCHW_ENV}=1): TensorFlow's CPU "
                "kernels only support the NHWC tensor format")
        xs = [feeds[n] for n in self.inputs]
        struct = getattr(model, "_inputs_struct", None)  # Keras 3: call with the same nesting
        if isinstance(struct, dict):
            arg = dict(zip(struct, xs))
        elif isinstance(struct, (list, tuple)) or len(xs) > 1:
            arg = xs
        else:
            arg = xs[0]
        out = model(arg, training=False)
        return [_np(o) for o in _flat(out)]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return dict(zip(self.outputs, self._call(self.model, feeds)))
        except Exception as exc:
            if not self._nchw_unsupported(exc):
                raise
            return self._on_torch(feeds, None)["outputs"]

    def _on_tensorflow(self) -> bool:
        if self.keras.__name__ != "keras":
            return False
        try:
            return self.keras.backend.backend() == "tensorflow"
        except Exception:
            return os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"

    # TensorFlow's CPU kernels cannot run channels_first convolutions on every machine (not
    # without oneDNN). Keras 3 runs such a model on its torch backend instead, which must be
    # chosen before Keras is imported: in a child process.
    def _nchw_unsupported(self, exc: Exception) -> bool:
        import importlib.util

        text = f"{type(exc).__name__}: {exc}"
        if "NHWC" not in text and "UnimplementedError" not in text:
            return False
        if self.keras.__name__ != "keras" or os.environ.get("KERAS_BACKEND") == "torch":
            return False
        if importlib.util.find_spec("torch") is None:
            raise ModelportError(
                "TensorFlow cannot run this channels_first model on the CPU; install torch "
                "(pip install torch==2.13.0) so that Keras can run it on its torch backend",
                path=self.path) from exc
        return True

    def _on_torch(self, feeds: dict[str, np.ndarray], layers: dict | None) -> dict:
        import json
        import subprocess
        import sys
        import tempfile

        if "torch backend" not in self.name:
            self.name += " (torch backend: TensorFlow's CPU kernels here cannot run channels_first)"
        with tempfile.TemporaryDirectory(prefix="modelport-keras-") as tmp:
            np.savez(os.path.join(tmp, "feeds.npz"), **feeds)
            job = {"path": self.path, "weights": self.weights, "trust": self.trust,
                   "layers": layers, "dir": tmp}
            env = dict(os.environ, KERAS_BACKEND="torch")
            r = subprocess.run([sys.executable, "-c", _TORCH_CHILD, json.dumps(job)], env=env,
                               capture_output=True, text=True)
            if r.returncode != 0:
                last = (r.stderr.strip().splitlines() or ["no output"])[-1]
                raise ModelportError(f"Keras (torch backend) could not run the model: {last}",
                                     path=self.path)
            with np.load(os.path.join(tmp, "out.npz")) as z:
                arrays = {k: z[k] for k in z.files}
        outputs = {n: arrays[f"o{i}"] for i, n in enumerate(self.outputs)}
        per_layer: dict[str, list[np.ndarray]] = {}
        for key, value in arrays.items():
            if key.startswith("l:"):
                name, _, idx = key[2:].rpartition(":")
                per_layer.setdefault(name, []).append((int(idx), value))
        return {"outputs": outputs,
                "layers": {n: [v for _, v in sorted(vs)] for n, vs in per_layer.items()}}

    def _layer_tensors(self, name: str) -> list | None:
        try:
            layer = self.model.get_layer(name)
        except ValueError:
            return None
        try:
            if hasattr(layer, "get_output_at"):
                out = layer.get_output_at(-1)
            else:
                out = layer._inbound_nodes[-1].outputs
        except Exception:
            return None
        return _flat(out)

    def run_layers(self, feeds: dict[str, np.ndarray],
                   layers: dict[str, list[str]]) -> dict[str, list[np.ndarray]]:
        try:
            return self._run_layers(feeds, layers)
        except Exception as exc:
            if not self._nchw_unsupported(exc):
                raise
            return self._on_torch(feeds, layers)["layers"]

    def _run_layers(self, feeds: dict[str, np.ndarray],
                    layers: dict[str, list[str]]) -> dict[str, list[np.ndarray]]:
        wanted: dict[str, list] = {}
        for name, values in layers.items():
            tensors = self._layer_tensors(name)
            if tensors and len(tensors) == len(values):
                wanted[name] = tensors
        names = list(wanted)
        flat = [t for n in names for t in wanted[n]]
        try:
            probe = self.keras.Model(self.model.inputs, flat)
        except Exception:
            keep = []
            for n in names:
                try:
                    self.keras.Model(self.model.inputs, wanted[n])
                    keep.append(n)
                except Exception:
                    continue
            names = keep
            flat = [t for n in names for t in wanted[n]]
            if not flat:
                return {}
            probe = self.keras.Model(self.model.inputs, flat)
        results = self._call(probe, feeds)
        out: dict[str, list[np.ndarray]] = {}
        i = 0
        for n in names:
            k = len(wanted[n])
            out[n] = results[i:i + k]
            i += k
        return out


def _has_channels_first(model: Any) -> bool:
    """Whether any layer of the model (nested models too) computes in channels_first."""
    for layer in getattr(model, "layers", []):
        if getattr(layer, "data_format", None) == "channels_first" or _has_channels_first(layer):
            return True
    return False


def _vocab(config: dict) -> int | None:
    """The smallest Embedding vocabulary, so random integer inputs stay in range."""
    sizes = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if x.get("class_name") == "Embedding":
                sizes.append(int((x.get("config") or {}).get("input_dim", 0)))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(config)
    return min(sizes) if sizes else None


def reference(path: str, options: Any = None, device: str = "cpu") -> KerasReference:
    return KerasReference(path, options, device=device)


_TORCH_CHILD = """
import json, os, sys
import numpy as np
from modelport.convert.runners.keras import KerasReference
from modelport.importers.registry import LoadOptions
job = json.loads(sys.argv[1])
ref = KerasReference(job["path"], LoadOptions(weights=job["weights"], trust_code=job["trust"]))
with np.load(os.path.join(job["dir"], "feeds.npz")) as z:
    feeds = {k: z[k] for k in z.files}
out = {f"o{i}": v for i, v in enumerate(ref.run(feeds).values())}
if job["layers"]:
    for name, values in ref.run_layers(feeds, job["layers"]).items():
        for i, v in enumerate(values):
            out[f"l:{name}:{i}"] = v
np.savez(os.path.join(job["dir"], "out.npz"), **out)
"""
