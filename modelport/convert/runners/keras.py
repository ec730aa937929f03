"""Reference runner for Keras models: the model loaded by Keras itself.

Files saved by Keras 2 are run by ``tf_keras`` when it is installed (the same code that wrote
them), otherwise by Keras 3; Keras 3 files by Keras 3. Only verification imports Keras;
conversion never does.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from modelport.errors import MissingDependencyError, ModelportError, first_line

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
        from modelport.importers.keras.safety import check

        # The pipeline's code check ran already; this guards direct use of the runner.
        check(path, options, run=True)
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
            first = first_line(exc)
            raise ModelportError(f"{keras.__name__} cannot load the model: {first}",
                                 path=path) from exc

    def _call(self, model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._call_list(model, [feeds[n] for n in self.inputs])

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

    def _inbound(self, layer: Any, what: str) -> list | None:
        """The tensors of ``layer``'s last call in its parent model (``what``: input/output)."""
        try:
            if hasattr(layer, f"get_{what}_at"):  # tf_keras
                return _flat(getattr(layer, f"get_{what}_at")(-1))
            node = layer._inbound_nodes[-1]
            return _flat(node.input_tensors if what == "input" else node.outputs)
        except Exception:
            return None

    def _scope(self, prefix: tuple[str, ...], feeds: dict[str, np.ndarray], cache: dict):
        """The (nested) model named by ``prefix`` and the values of its inputs.

        A layer inside a nested model has tensors of the nested model's own graph; they are
        computed by running the nested model on the values its call receives in the parent.
        """
        if prefix in cache:
            return cache[prefix]
        if not prefix:
            result = self.model, [feeds[n] for n in self.inputs]
        else:
            parent, parent_values = self._scope(prefix[:-1], feeds, cache)
            if parent is None:
                result = None, None
            else:
                try:
                    inner = parent.get_layer(prefix[-1])
                except ValueError:
                    inner = None
                tensors = self._inbound(inner, "input") if inner is not None else None
                if not tensors or not hasattr(inner, "get_layer"):
                    result = None, None
                else:
                    probe = self.keras.Model(parent.inputs, tensors)
                    result = inner, self._call_list(probe, parent_values)
        cache[prefix] = result
        return result

    def _call_list(self, model: Any, xs: list[np.ndarray]) -> list[np.ndarray]:
        if os.environ.get(SIMULATE_NO_NCHW_ENV) == "1" and self._on_tensorflow() and \
                _has_channels_first(self.model):
            raise RuntimeError(
                f"UnimplementedError (simulated by {SIMULATE_NO_NCHW_ENV}=1): TensorFlow's CPU "
                "kernels only support the NHWC tensor format")
        struct = getattr(model, "_inputs_struct", None)
        if isinstance(struct, dict):
            arg = dict(zip(struct, xs))
        elif isinstance(struct, (list, tuple)) or len(xs) > 1:
            arg = list(xs)
        else:
            arg = xs[0]
        return [_np(o) for o in _flat(model(arg, training=False))]

    def layer_names(self) -> list[str]:
        """Every source layer, nested models' layers as ``outer/inner`` (inputs left out)."""
        names: list[str] = []

        def walk(model: Any, prefix: str) -> None:
            for layer in getattr(model, "layers", []):
                if type(layer).__name__ == "InputLayer":
                    continue
                names.append(prefix + layer.name)
                if hasattr(layer, "get_layer") and hasattr(layer, "layers"):
                    walk(layer, prefix + layer.name + "/")

        walk(self.model, "")
        return names

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
        self.layer_reasons: dict[str, str] = {}
        groups: dict[tuple[str, ...], dict[str, str]] = {}
        for name in layers:
            *prefix, last = name.split("/")
            groups.setdefault(tuple(prefix), {})[name] = last
        out: dict[str, list[np.ndarray]] = {}
        cache: dict = {}
        for prefix, members in groups.items():
            model, values = self._scope(prefix, feeds, cache)
            if model is None:
                for name in members:
                    self.layer_reasons[name] = (f"Keras cannot run the nested model "
                                                f"{'/'.join(prefix)!r} on its own")
                continue
            wanted: dict[str, list] = {}
            for name, short in members.items():
                try:
                    layer = model.get_layer(short)
                except ValueError:
                    self.layer_reasons[name] = "Keras has no layer of this name"
                    continue
                tensors = self._inbound(layer, "output")
                if not tensors:
                    self.layer_reasons[name] = "Keras does not expose this layer's output"
                elif len(tensors) != len(layers[name]):
                    self.layer_reasons[name] = (f"Keras gives {len(tensors)} outputs for it, "
                                                f"the converted model {len(layers[name])}")
                else:
                    wanted[name] = tensors
            names = list(wanted)
            try:
                probe = self.keras.Model(model.inputs, [t for n in names for t in wanted[n]])
            except Exception:
                keep = []
                for n in names:
                    try:
                        self.keras.Model(model.inputs, wanted[n])
                        keep.append(n)
                    except Exception as exc:
                        self.layer_reasons[n] = (f"Keras cannot build a model up to this layer "
                                                 f"({type(exc).__name__})")
                names = keep
                if not names:
                    continue
                probe = self.keras.Model(model.inputs, [t for n in names for t in wanted[n]])
            results = self._call_list(probe, values)
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


def reference(path: str, options: Any = None, device: str = "cpu") -> Any:
    # Files of Keras' Theano backend (and Keras 1 files) need a reference that reproduces
    # Theano's semantics: real Keras on Theano, or a report that none can judge them.
    from modelport.convert.runners.theano import theano_reference

    special = theano_reference(path, options)
    if special is not None:
        return special
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
