"""Keras 1 files, rewritten into the Keras 2 form the rest of the importer translates.

Keras 1 (the Keras of most Theano-era models) named layers and arguments differently
(``Convolution2D(nb_filter, nb_row, nb_col, border_mode=, subsample=, dim_ordering=)``, ``Merge``
with a ``mode``, ``output_dim``, ``inner_activation``...), stored Sequential configs as a bare
list, kept ``th``-ordered kernels as ``(out, in, rows, cols)``, LSTM/GRU weights gate by gate,
and BatchNormalization's ``running_std`` (a variance from Keras 1.0.6 on, a true standard
deviation before). :func:`normalize_config` rewrites a Keras 1 model config into Keras 2 terms
(each layer remembers its Keras 1 facts under ``_keras1``) and :class:`Keras1Weights` presents
its weights in Keras 2 layout, still read lazily from the HDF5 file.

Keras 1 never recorded its backend; see theano.py for how it is decided.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from modelport.errors import UnsupportedOpsError

INFO = "_keras1"


def is_keras1(keras_version: str, config: dict) -> bool:
    return str(keras_version).startswith("1")


def _ordering(c: dict) -> str:
    return "channels_first" if c.get("dim_ordering") == "th" else "channels_last"


def _common(c: dict) -> dict:
    out = {"name": c.get("name"), "trainable": c.get("trainable", True)}
    if "batch_input_shape" in c:
        out["batch_input_shape"] = c["batch_input_shape"]
    if c.get("input_dtype"):
        out["dtype"] = c["input_dtype"]
    if "activation" in c:
        out["activation"] = c["activation"]
    return out


def _conv(c: dict, kernel: list, strides: Any, rank: int) -> dict:
    out = _common(c)
    out.update(filters=c["nb_filter"], kernel_size=kernel,
               strides=strides if strides is not None else [1] * rank,
               padding=c.get("border_mode", "valid"), use_bias=c.get("bias", True))
    if rank > 1:
        out["data_format"] = _ordering(c)
    return out


def _pool(c: dict, rank: int) -> dict:
    out = _common(c)
    if rank == 1:
        out.update(pool_size=c.get("pool_length", 2), strides=c.get("stride"))
    else:
        out.update(pool_size=c.get("pool_size"), strides=c.get("strides"),
                   data_format=_ordering(c))
    out["padding"] = c.get("border_mode", "valid")
    return out


def _pad2d(p: Any) -> list:
    if isinstance(p, dict):
        return [[p.get("top_pad", 0), p.get("bottom_pad", 0)],
                [p.get("left_pad", 0), p.get("right_pad", 0)]]
    p = list(p) if isinstance(p, (list, tuple)) else [p, p]
    if len(p) == 4:
        return [[p[0], p[1]], [p[2], p[3]]]
    return [[x, x] if isinstance(x, int) else list(x) for x in p]


_MERGE_MODES = {"sum": "Add", "mul": "Multiply", "concat": "Concatenate", "ave": "Average",
                "max": "Maximum", "dot": "Dot"}


def _layer(lc: dict, unsupported: dict[str, list[str]]) -> dict:
    """One Keras 1 layer config ``{"class_name", "config", ...}`` in Keras 2 terms."""
    cls = lc["class_name"]
    c = lc.get("config") or {}
    name = c.get("name", cls)
    info = {"class": cls, "dim_ordering": c.get("dim_ordering"),
            "consume_less": c.get("consume_less")}
    new_cls, n = cls, None
    if cls == "Dense" or cls == "TimeDistributedDense":
        n = _common(c)
        n.update(units=c["output_dim"], use_bias=c.get("bias", True))
        if cls == "TimeDistributedDense":
            inner = {"class_name": "Dense", "config": dict(n, name=name)}
            inner["config"].pop("batch_input_shape", None)
            inner["config"][INFO] = dict(info, **{"class": "Dense"})
            n = {"name": name, "layer": inner,
                 **({"batch_input_shape": c["batch_input_shape"]}
                    if "batch_input_shape" in c else {})}
            new_cls = "TimeDistributed"
    elif cls in ("Convolution1D", "AtrousConvolution1D"):
        new_cls = "Conv1D"
        n = _conv(c, [c["filter_length"]], [c.get("subsample_length", 1)], 1)
        n["dilation_rate"] = [c.get("atrous_rate", 1)]
    elif cls in ("Convolution2D", "AtrousConvolution2D"):
        new_cls = "Conv2D"
        n = _conv(c, [c["nb_row"], c["nb_col"]], c.get("subsample"), 2)
        n["dilation_rate"] = list(c.get("atrous_rate", (1, 1)))
    elif cls == "Convolution3D":
        new_cls = "Conv3D"
        n = _conv(c, [c["kernel_dim1"], c["kernel_dim2"], c["kernel_dim3"]],
                  c.get("subsample"), 3)
    elif cls == "Deconvolution2D":
        new_cls = "Conv2DTranspose"
        n = _conv(c, [c["nb_row"], c["nb_col"]], c.get("subsample"), 2)
        info["output_shape"] = c.get("output_shape")
    elif cls == "SeparableConvolution2D":
        new_cls = "SeparableConv2D"
        n = _conv(c, [c["nb_row"], c["nb_col"]], c.get("subsample"), 2)
        n["depth_multiplier"] = c.get("depth_multiplier", 1)
    elif cls in ("MaxPooling1D", "AveragePooling1D"):
        n = _pool(c, 1)
    elif cls in ("MaxPooling2D", "AveragePooling2D", "MaxPooling3D", "AveragePooling3D"):
        n = _pool(c, 2)
    elif cls.startswith("Global") and ("Pooling2D" in cls or "Pooling3D" in cls):
        n = _common(c)
        n["data_format"] = _ordering(c)
    elif cls == "ZeroPadding1D":
        n = _common(c)
        p = c.get("padding", 1)
        if isinstance(p, dict):
            p = [p.get("left_pad", 0), p.get("right_pad", 0)]
        n["padding"] = p
    elif cls == "ZeroPadding2D":
        n = _common(c)
        n.update(padding=_pad2d(c.get("padding", (1, 1))), data_format=_ordering(c))
    elif cls == "ZeroPadding3D":
        n = _common(c)
        p = c.get("padding", (1, 1, 1))
        n.update(padding=[[x, x] if isinstance(x, int) else list(x) for x in p],
                 data_format=_ordering(c))
    elif cls in ("Cropping2D", "Cropping3D"):
        n = _common(c)
        n.update(cropping=c.get("cropping"), data_format=_ordering(c))
    elif cls == "UpSampling1D":
        n = _common(c)
        n["size"] = c.get("length", 2)
    elif cls in ("UpSampling2D", "UpSampling3D"):
        n = _common(c)
        n.update(size=c.get("size"), data_format=_ordering(c))
    elif cls in ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                 "GaussianDropout"):
        n = _common(c)
        n["rate"] = c.get("p", 0.0)
    elif cls == "GaussianNoise":
        n = _common(c)
        n["stddev"] = c.get("sigma", 0.0)
    elif cls == "BatchNormalization":
        mode = int(c.get("mode", 0))
        if mode == 2:
            unsupported.setdefault("BatchNormalization (mode=2: batch statistics at inference)",
                                   []).append(name)
        n = _common(c)
        n.update(axis=c.get("axis", -1), epsilon=c.get("epsilon", 1e-3),
                 momentum=c.get("momentum", 0.99), center=True, scale=True)
        info["mode"] = mode
        if mode == 1:
            new_cls = "Keras1SampleNormalization"
    elif cls in ("LSTM", "GRU", "SimpleRNN"):
        n = _common(c)
        n.update(units=c["output_dim"], return_sequences=c.get("return_sequences", False),
                 go_backwards=c.get("go_backwards", False), stateful=c.get("stateful", False),
                 unroll=c.get("unroll", False), use_bias=True)
        if cls != "SimpleRNN":
            n["recurrent_activation"] = c.get("inner_activation", "hard_sigmoid")
        if cls == "GRU":
            n["reset_after"] = False
        if "input_length" in c and "batch_input_shape" not in n and c.get("input_dim"):
            n["batch_input_shape"] = [None, c["input_length"], c["input_dim"]]
    elif cls == "Embedding":
        n = _common(c)
        n.update(input_dim=c["input_dim"], output_dim=c["output_dim"],
                 mask_zero=c.get("mask_zero", False), input_length=c.get("input_length"))
    elif cls == "Merge":
        mode = c.get("mode", "sum")
        if not isinstance(mode, str) or mode not in _MERGE_MODES:
            unsupported.setdefault(f"Merge (mode={mode if isinstance(mode, str) else 'lambda'})",
                                   []).append(name)
            mode = "sum"
        new_cls = _MERGE_MODES[mode]
        n = {"name": name, "trainable": True}
        if mode == "concat":
            n["axis"] = c.get("concat_axis", -1)
        if mode == "dot":
            axes = c.get("dot_axes", -1)
            n["axes"] = axes
    elif cls in ("TimeDistributed", "Bidirectional"):
        n = dict(c)
        n["layer"] = _layer(c["layer"], unsupported)
        if "batch_input_shape" in c:
            n["batch_input_shape"] = c["batch_input_shape"]
    elif cls == "InputLayer":
        n = {"name": name, "batch_input_shape": c.get("batch_input_shape"),
             "dtype": c.get("input_dtype") or "float32", "sparse": c.get("sparse", False)}
    elif cls in ("MaxoutDense", "Highway"):
        n = dict(c)
    elif cls in ("Activation", "Flatten", "Reshape", "Permute", "RepeatVector", "Masking",
                 "LeakyReLU", "ELU", "PReLU", "ThresholdedReLU", "Lambda"):
        n = dict(c)
        if "input_dtype" in n:
            n["dtype"] = n.pop("input_dtype")
    else:
        n = dict(c)  # unknown: reported by name later, never guessed
    n[INFO] = info
    out = {k: v for k, v in lc.items() if k not in ("class_name", "config")}
    out.update(class_name=new_cls, config=n)
    return out


def normalize_config(config: dict, path: str | None = None) -> dict:
    """A Keras 1 model config (Sequential list or functional Model) in Keras 2 terms."""
    config = copy.deepcopy(config)
    unsupported: dict[str, list[str]] = {}
    out = _model(config, unsupported)
    if unsupported:
        raise UnsupportedOpsError(unsupported, path=path, kind="Keras 1 layer")
    return out


def _model(config: dict, unsupported: dict) -> dict:
    cls = config.get("class_name")
    conf = config.get("config")
    if cls == "Sequential":
        layers = conf if isinstance(conf, list) else conf.get("layers", [])
        if layers and layers[0].get("class_name") == "Merge" and \
                (layers[0].get("config") or {}).get("layers"):
            return _sequential_merge(layers, unsupported)
        return {"class_name": "Sequential", "keras_version": config.get("keras_version"),
                "config": {"name": "sequential", "layers": [_layer(lc, unsupported)
                                                            for lc in layers]}}
    if cls == "Model" or (isinstance(conf, dict) and "layers" in conf):
        conf = dict(conf)
        new_layers = []
        for lc in conf.get("layers", []):
            if lc.get("class_name") in ("Sequential", "Model"):
                sub = _model(lc, unsupported)
                sub = dict(lc, class_name=sub["class_name"], config=sub["config"])
                new_layers.append(sub)
            else:
                new_layers.append(_layer(lc, unsupported))
        conf["layers"] = new_layers
        return {"class_name": "Model", "config": conf}
    return config


def _sequential_merge(layers: list[dict], unsupported: dict) -> dict:
    """A Keras 1 Sequential starting with ``Merge([seq_a, seq_b, ...])``: rewritten as one
    functional model (each branch's layers inline, so weights stay under their own names)."""
    merge = layers[0]
    mc = merge["config"]
    out_layers: list[dict] = []
    inputs, branch_outs = [], []
    for i, branch in enumerate(mc["layers"]):
        bconf = branch.get("config")
        blayers = bconf if isinstance(bconf, list) else bconf.get("layers", [])
        first = blayers[0].get("config") or {}
        in_name = f"{first.get('name', f'branch{i}')}_input"
        out_layers.append({"class_name": "InputLayer", "name": in_name, "inbound_nodes": [],
                           "config": {"name": in_name, "dtype": first.get("input_dtype",
                                                                          "float32"),
                                      "batch_input_shape": first.get("batch_input_shape")}})
        inputs.append([in_name, 0, 0])
        prev = in_name
        for lc in blayers:
            nl = _layer(lc, unsupported)
            nl["name"] = nl["config"]["name"]
            nl["inbound_nodes"] = [[[prev, 0, 0, {}]]]
            out_layers.append(nl)
            prev = nl["name"]
        branch_outs.append(prev)
    head = dict(merge, config={k: v for k, v in mc.items() if k != "layers"})
    nl = _layer(head, unsupported)
    nl["name"] = nl["config"]["name"]
    nl["inbound_nodes"] = [[[b, 0, 0, {}] for b in branch_outs]]
    out_layers.append(nl)
    prev = nl["name"]
    for lc in layers[1:]:
        nl = _layer(lc, unsupported)
        nl["name"] = nl["config"]["name"]
        nl["inbound_nodes"] = [[[prev, 0, 0, {}]]]
        out_layers.append(nl)
        prev = nl["name"]
    return {"class_name": "Model", "config": {
        "name": "sequential", "layers": out_layers, "input_layers": inputs,
        "output_layers": [[prev, 0, 0]]}}


# -- weights ---------------------------------------------------------------------------------

class Derived:
    """A weight computed from HDF5 datasets when read (``ds[()]``), with its shape known now."""

    def __init__(self, fn, shape: tuple, dtype: Any) -> None:
        self.fn, self.shape, self.dtype = fn, tuple(shape), np.dtype(dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        value = np.asarray(self.fn())
        return value if key == () else value[key]


def _shape_of(fn, datasets) -> tuple:
    zeros = [np.zeros(d.shape, np.float32) for d in datasets]
    return fn(*zeros).shape


def _derive(fn, *datasets) -> Derived:
    return Derived(lambda: fn(*[np.asarray(d[()]) for d in datasets]),
                   _shape_of(fn, datasets), datasets[0].dtype)


def _version_tuple(v: str) -> tuple:
    parts = []
    for p in str(v).split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (3 - len(parts)))


def convert_weights(cls: str, info: dict, config: dict, ws: list, version: str) -> list:
    """Keras 1 weights of one (normalised) layer in Keras 2 layout."""
    orig = info.get("class", cls)
    th = info.get("dim_ordering") == "th"
    if not ws:
        return ws
    if cls == "Conv1D" and len(ws[0].shape) == 4:
        k = int(config["kernel_size"][0])
        filters = int(config["filters"])
        shape = tuple(ws[0].shape)
        if shape[:2] == (k, 1) and shape[3] == filters:
            return [_derive(lambda w: w[:, 0], ws[0]), *ws[1:]]
        return [_derive(lambda w: np.transpose(w, (2, 3, 1, 0))[:, 0], ws[0]), *ws[1:]]
    if cls in ("Conv2D", "Conv3D") and th:
        perm = (2, 3, 1, 0) if cls == "Conv2D" else (2, 3, 4, 1, 0)
        return [_derive(lambda w: np.transpose(w, perm), ws[0]), *ws[1:]]
    if cls == "Conv2DTranspose":
        perm = (2, 3, 0, 1) if th else (0, 1, 3, 2)
        return [_derive(lambda w: np.transpose(w, perm), ws[0]), *ws[1:]]
    if cls == "SeparableConv2D" and th:
        return [_derive(lambda w: np.transpose(w, (2, 3, 1, 0)), w) for w in ws[:2]] + ws[2:]
    if cls == "LSTM" and len(ws) == 12:
        return [_derive(lambda *a: np.concatenate(a, axis=-1), ws[j], ws[j + 6], ws[j + 3],
                        ws[j + 9]) for j in range(3)]
    if cls == "GRU" and len(ws) == 9:
        return [_derive(lambda *a: np.concatenate(a, axis=-1), ws[j], ws[j + 3], ws[j + 6])
                for j in range(3)]
    if orig == "BatchNormalization" or cls == "Keras1SampleNormalization":
        if len(ws) == 4 and _version_tuple(version) < (1, 0, 6):
            return [*ws[:3], _derive(lambda s: np.square(s), ws[3])]
        return ws
    if cls in ("TimeDistributed", "Bidirectional"):
        inner = config["layer"]
        icfg = inner.get("config") or {}
        iinfo = icfg.get(INFO, {})
        if cls == "Bidirectional":
            half = len(ws) // 2
            return (convert_weights(inner["class_name"], iinfo, icfg, ws[:half], version) +
                    convert_weights(inner["class_name"], iinfo, icfg, ws[half:], version))
        return convert_weights(inner["class_name"], iinfo, icfg, ws, version)
    return ws


class Keras1Weights:
    """A Keras 1 file's weights (``LegacyWeights``) presented in Keras 2 layout."""

    def __init__(self, inner: Any, version: str) -> None:
        self.inner, self.version = inner, version

    def for_layer(self, path: tuple[str, ...], spec: Any) -> list:
        ws = self.inner.for_layer(path, spec)
        info = (spec.config or {}).get(INFO) or {}
        return convert_weights(spec.class_name, info, spec.config or {}, list(ws), self.version)
