"""Reference runner for MXNet models: real MXNet 1.9.1, run in a child process with the
interpreter of its own environment (see :mod:`.mxnet_env`), since MXNet cannot share NumPy 2
with modelport. Inputs and outputs travel as ``.npz`` files; per-layer verification asks for
every internal output by its symbol name (``sym.get_internals()``)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from modelport.convert.runners import mxnet_env
from modelport.errors import InvalidModelError, MissingDependencyError, ModelportError

CHILD = Path(__file__).with_name("mxnet_child.py")
TIMEOUT_S = 900


class MXNetEnvMissing(MissingDependencyError):
    def __init__(self, path: str) -> None:
        ModelportError.__init__(
            self, "verifying an MXNet model needs MXNet 1.9.1 in its own environment, which is "
            "not set up; create it with `make mxnet-env` (or `python -m "
            "modelport.convert.runners.mxnet_env`), or set MODELPORT_MXNET_PYTHON", path=path)
        self.package, self.extra = "mxnet", "core"


class MXNetReference:
    def __init__(self, path: str, options=None) -> None:
        from modelport.importers.mxnet.load import IO_KEY, build, resolve_files
        from modelport.importers.mxnet.params import ParamsFile
        from modelport.importers.mxnet.symbol import read_symbol
        from modelport.importers.registry import LoadOptions

        options = options or LoadOptions()
        self.symbol, self.params = resolve_files(path, options)
        if self.params is None:
            raise InvalidModelError(
                "verification against MXNet needs the .params file; pass it with --weights",
                path=path)
        python = mxnet_env.find_python()
        if python is None:
            raise MXNetEnvMissing(path)
        self.python = python
        self.name = "MXNet 1.9.1 (child process)"
        # ONNX input/output names -> MXNet names, from a structure import of the same files.
        model = build(read_symbol(self.symbol), ParamsFile(self.params),
                      LoadOptions(input_shapes=dict(options.input_shapes),
                                  input_dtypes=dict(options.input_dtypes)), self.symbol)
        self._io = json.loads(model.metadata_props[IO_KEY])

    def _call(self, feeds: dict[str, np.ndarray], outputs) -> dict[str, np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="modelport-mxnet-") as tmp:
            inputs = os.path.join(tmp, "inputs.npz")
            result = os.path.join(tmp, "result.npz")
            names = self._io["inputs"]
            np.savez(inputs, **{names.get(k, k): np.asarray(v) for k, v in feeds.items()})
            request = {"symbol": self.symbol, "params": self.params, "inputs": inputs,
                       "outputs": outputs, "result": result}
            req = os.path.join(tmp, "request.json")
            with open(req, "w") as f:
                json.dump(request, f)
            proc = subprocess.run([self.python, str(CHILD), req], capture_output=True,
                                  text=True, timeout=TIMEOUT_S)
            if proc.returncode != 0 and "MXNetError" in proc.stderr:
                # MXNet 1.9.1's MKLDNN kernels reject some valid models (Deconvolution with
                # target_shape), its plain CPU kernels others (Gluon's RNN): try the other.
                env = dict(os.environ, MXNET_MKLDNN_ENABLED="0")
                retry = subprocess.run([self.python, str(CHILD), req], capture_output=True,
                                       text=True, timeout=TIMEOUT_S, env=env)
                if retry.returncode == 0:
                    proc = retry
            if proc.returncode != 0:
                lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
                why = lines[-1] if lines else f"exit status {proc.returncode}"
                raise InvalidModelError(f"MXNet could not run this model: {why}",
                                        path=self.symbol)
            with np.load(result) as data:
                return {k.partition(":")[2]: data[k] for k in
                        sorted(data.files, key=lambda s: int(s.partition(":")[0]))}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        wanted = list(self._io["outputs"].items())
        got = self._call(feeds, [mx for _, mx in wanted])
        return {onnx: got[mx] for onnx, mx in wanted if mx in got}

    def run_layers(self, feeds, layers: dict[str, list[str]]) -> dict[str, list[np.ndarray]]:
        asked: dict[str, list[str]] = {}
        for layer, values in layers.items():
            if len(values) == 1:
                asked[layer] = [f"{layer}_output"]
            else:
                asked[layer] = [f"{layer}_output{i}" for i in range(len(values))]
        got = self._call(feeds, [n for names in asked.values() for n in names])
        return {layer: [got[n] for n in names] for layer, names in asked.items()
                if all(n in got for n in names)}


def reference(path: str, options=None, device: str = "cpu") -> MXNetReference:
    return MXNetReference(path, options)
