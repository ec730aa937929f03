"""Run a Keras file on real Keras + Theano: the child process of runners/theano.py.

This file runs with the interpreter of a Theano environment (see theano_env.py: Keras 1.2.2 or
2.2.4 on Theano 1.0.5, NumPy < 1.24), so it imports nothing from modelport and only what that
environment has. Usage: ``python theano_child.py JOB.json``; the job names the model file (and
weights file), an ``.npz`` of inputs keyed by input name and where to write the outputs
(``o0``, ``o1``... in the model's output order).

The model is rebuilt from its JSON config by Keras itself and each layer's weights are set from
the HDF5 groups in their saved order, so the arrays reach Theano exactly as they were saved.
"""

import json
import sys

# Keras 1 layers whose kernels Theano flips (converted for files of the TensorFlow backend).
CONVERTED = {"Convolution1D", "Convolution2D", "Convolution3D", "AtrousConvolution1D",
             "AtrousConvolution2D"}


def _text(v):
    return v.decode("utf8") if hasattr(v, "decode") else str(v)


def main(job_path):
    with open(job_path) as f:
        job = json.load(f)
    import importlib

    theano = importlib.import_module("theano")
    importlib.import_module("theano.ifelse")  # before Keras: its Theano backend needs it
    keras = importlib.import_module("keras")
    import h5py
    import numpy as np

    model_from_json = keras.models.model_from_json

    handles = []
    path, weights = job["path"], job.get("weights")
    if path.lower().endswith(".json"):
        with open(path) as f:
            config = f.read()
        root = None
    else:
        h = h5py.File(path, "r")
        handles.append(h)
        config = _text(h.attrs["model_config"])
        root = h["model_weights"] if "model_weights" in h else None
    if weights:
        h = h5py.File(weights, "r")
        handles.append(h)
        root = h["model_weights"] if "model_weights" in h else h
    model = model_from_json(config)
    if root is not None:
        for layer in model.layers:
            if layer.name not in root:
                continue
            group = root[layer.name]
            names = [_text(n) for n in group.attrs.get("weight_names", [])]
            if names:
                arrays = [np.asarray(group[n][()]) for n in names]
                if job.get("convert_kernels") and type(layer).__name__ in CONVERTED:
                    # A TensorFlow-backend file run on Theano: its kernels flipped along their
                    # spatial axes (what Keras' convert_kernel does; that one fails on the
                    # NumPy of this environment).
                    w = arrays[0]
                    th = getattr(layer, "dim_ordering", "tf") == "th"
                    spatial = range(2, w.ndim) if th else range(w.ndim - 2)
                    arrays[0] = np.flip(w, axis=tuple(spatial)).copy()
                layer.set_weights(arrays)
    with np.load(job["inputs"]) as z:
        feeds = {k: z[k] for k in z.files}
    inputs = model.inputs if isinstance(model.inputs, list) else [model.inputs]
    names = job.get("input_names") or [getattr(t, "name", "") for t in inputs]
    xs = [feeds[n] for n in names]
    batch = xs[0].shape[0]
    out = model.predict(xs if len(xs) > 1 else xs[0], batch_size=batch)
    outs = out if isinstance(out, list) else [out]
    np.savez(job["outputs"], **{f"o{i}": np.asarray(o) for i, o in enumerate(outs)})
    for h in handles:
        h.close()
    print(json.dumps({"keras": keras.__version__, "theano": theano.__version__}))


if __name__ == "__main__":
    main(sys.argv[1])
