"""TensorFlow functions and Python indexing that tf.keras (Keras 2) records as TFOpLambda and
SlicingOpLambda layers, translated without executing anything.

The functions have a registry of their own (:func:`tf_function`, plus the tables of simple
element-wise, comparison and reduction functions below): :func:`supported` tells the importer,
before it translates anything, which functions of a model it cannot translate, so they are
listed together with unsupported layers.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from modelport.errors import UnsupportedFeatureError
from modelport.importers.keras.layers.merge import _broadcast_shape, _chain
from modelport.importers.keras.table import (
    KT,
    Context,
    Layer,
    cf_perm,
    ints,
    keras_layer,
    reduce,
)

# -- Keras 2 TFOpLambda and SlicingOpLambda -------------------------------------------------
#
# tf.keras records a TensorFlow function called on Keras tensors as a TFOpLambda layer whose
# config names the function ("math.reduce_mean", "concat", "__operators__.add"), and Python
# indexing ``x[:, 0]`` as a SlicingOpLambda. The function's first argument arrives as
# ``inputs`` (a list of tensors for concat/stack; a Python constant such as the 2.0 of
# ``2.0 * x`` as a constant KT); every other argument is in ``ctx.kwargs`` under its parameter
# name, tensors as KTs. Each function is translated exactly or refused with an
# UnsupportedFeatureError, as is any argument value the translation does not cover.

_INT64_MAX = int(np.iinfo(np.int64).max)
_INT64_MIN = int(np.iinfo(np.int64).min)

# Same-dtype element-wise arithmetic (Python scalars take the tensor's dtype, as in TF).
_TF_BINARY = {"__operators__.add": "Add", "math.add": "Add", "math.multiply": "Mul",
              "__operators__.mul": "Mul", "math.subtract": "Sub", "__operators__.sub": "Sub",
              "math.maximum": "Max", "math.minimum": "Min", "math.pow": "Pow",
              "__operators__.pow": "Pow"}
_TF_DIVIDE = {"math.truediv", "__operators__.truediv", "math.divide", "math.realdiv"}
_TF_FLOORDIV = {"compat.v1.floor_div", "math.floordiv", "__operators__.floordiv"}
_TF_COMPARE = {"math.greater": "Greater", "__operators__.gt": "Greater",
               "math.greater_equal": "GreaterOrEqual", "__operators__.ge": "GreaterOrEqual",
               "math.less": "Less", "__operators__.lt": "Less",
               "math.less_equal": "LessOrEqual", "__operators__.le": "LessOrEqual",
               "math.equal": "Equal", "__operators__.eq": "Equal",
               "math.not_equal": "NotEqual", "__operators__.ne": "NotEqual"}
_TF_LOGIC = {"math.logical_and": "And", "math.logical_or": "Or", "math.logical_xor": "Xor",
             "__operators__.and_": "And", "__operators__.or_": "Or"}
# One ONNX op on one tensor.
_TF_UNARY = {"nn.relu": "Relu", "math.sigmoid": "Sigmoid", "math.tanh": "Tanh",
             "math.exp": "Exp", "math.sqrt": "Sqrt", "math.negative": "Neg", "math.abs": "Abs",
             "math.log": "Log", "math.reciprocal": "Reciprocal", "math.erf": "Erf",
             "math.sign": "Sign", "math.floor": "Floor", "math.ceil": "Ceil",
             "math.round": "Round", "math.sin": "Sin", "math.cos": "Cos",
             "math.softplus": "Softplus", "nn.softplus": "Softplus",
             "math.softsign": "Softsign", "nn.softsign": "Softsign", "nn.elu": "Elu",
             "nn.selu": "Selu", "identity": "Identity", "stop_gradient": "Identity",
             "math.logical_not": "Not"}
_TF_REDUCE = {"math.reduce_mean": "ReduceMean", "math.reduce_sum": "ReduceSum",
              "math.reduce_max": "ReduceMax", "math.reduce_min": "ReduceMin",
              "math.reduce_prod": "ReduceProd", "math.reduce_any": "ReduceMax",
              "math.reduce_all": "ReduceMin"}
# Arguments that may be recorded with their default value (anything else is refused).
_TF_DEFAULTS = {"batch_dims": 0, "validate_indices": None, "conjugate": False,
                "a_is_sparse": False, "b_is_sparse": False, "output_type": None, "dim": None,
                "squeeze_dims": None, "num": None}

_tf_functions: dict = {}


def tf_function(*names: str):
    """Register a translator ``(ctx, fn, inputs, kwargs) -> KT`` for TensorFlow functions
    ``tf.<name>`` recorded in TFOpLambda layers."""

    def register(fn):
        for n in names:
            _tf_functions[n] = fn
        return fn

    return register


def _refuse(fn: str, what: str = "", kind: str = "TFOpLambda") -> UnsupportedFeatureError:
    return UnsupportedFeatureError(f"{kind} {fn!r}{' ' + what if what else ''} is not supported")


def _args(fn: str, kw: dict, *allowed: str) -> dict:
    """The recorded keyword arguments, after checking that none but ``allowed`` (and those
    left at their default) were given."""
    for k, v in kw.items():
        if k in allowed or (k == "name" and not isinstance(v, KT)):  # the op's name
            continue
        if k in _TF_DEFAULTS and (v is None or v == _TF_DEFAULTS[k]) and \
                not isinstance(v, KT):
            continue
        raise _refuse(fn, f"with {k}={v!r}")
    return kw


def _int_arg(fn: str, name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise _refuse(fn, f"with {name}={v!r} (only constant integers)")
    return int(v)


def _int_list(fn: str, name: str, v) -> list[int]:
    if isinstance(v, KT) and v.const is not None and v.const.ndim <= 1:
        v = v.const.tolist()
    vals = v if isinstance(v, (list, tuple)) else [v]
    return [_int_arg(fn, name, a) for a in vals]


def _axis(fn: str, a, rank: int) -> int:
    a = _int_arg(fn, "axis", a)
    if not -rank <= a < rank:
        raise UnsupportedFeatureError(f"TFOpLambda {fn!r}: axis {a} is out of range for rank {rank}")
    return a % rank


def _tensor(fn: str, t) -> KT:
    if not isinstance(t, KT) or t.const is not None:
        raise _refuse(fn, "on a constant instead of a Keras tensor")
    return t


def _konst(ctx: Context, fn: str, v, dtype, kind: str = "TFOpLambda") -> KT:
    """A Python constant (or constant KT) as a tensor of ``dtype``, as TF converts it."""
    if isinstance(v, KT):
        v = v.const
    arr = np.asarray(v)
    if arr.dtype.kind not in "biuf":
        raise _refuse(fn, f"with the operand {v!r}", kind)
    dtype = np.dtype(dtype)
    out = arr.astype(dtype)
    if not np.array_equal(out.astype(np.float64), arr.astype(np.float64)) and \
            dtype.kind != "f":
        raise _refuse(fn, f"with the {dtype} tensor and the constant {v!r}", kind)
    return KT(ctx.const(out, "c"), out.shape, out.dtype, const=out)


def _operands(ctx: Context, fn: str, values: list, kind: str = "TFOpLambda") -> list[KT]:
    """Operands of an element-wise function: constants take the tensors' dtype (TF requires
    tensors of one dtype; so do ONNX's element-wise operators)."""
    tensors = [v for v in values if isinstance(v, KT) and v.const is None]
    if not tensors:
        raise _refuse(fn, "on constants only", kind)
    dtype = tensors[0].dtype
    if any(t.dtype != dtype for t in tensors):
        raise _refuse(fn, "on tensors of different dtypes", kind)
    return [v if isinstance(v, KT) and v.const is None else _konst(ctx, fn, v, dtype, kind)
            for v in values]


def _second(fn: str, inputs: list[KT], kw: dict, key: str = "y"):
    other = kw.get(key, inputs[1] if len(inputs) > 1 else None)
    if other is None:
        raise _refuse(fn, "whose second operand the file does not record")
    return other


def _kt(ctx: Context, value, shape, dtype, perm=None) -> KT:
    """A result KT. Physical orders other than channels-first are not left for other layers
    to meet: such a value is transposed to channels-first (rank 3+) or the logical order."""
    shape = tuple(shape)
    rank = len(shape)
    if perm is not None and tuple(perm) == tuple(range(rank)):
        perm = None
    out = KT(value, shape, np.dtype(dtype), tuple(perm) if perm is not None else None)
    if perm is not None and (rank < 3 or tuple(perm) != cf_perm(rank)):
        if rank >= 3:
            return KT(ctx.channels_first(out), shape, out.dtype, cf_perm(rank))
        out = ctx.as_logical(out)
    return out


def _perm_without(perm, axes) -> tuple | None:
    """The physical order left when the logical ``axes`` are removed."""
    if perm is None:
        return None
    keep = [p for p in perm if p not in axes]
    order = sorted(keep)
    return tuple(order.index(p) for p in keep)


def _c(ctx: Context, v: float, dtype) -> object:
    return ctx.const(np.array(v, dtype), "c")


def _float(fn: str, t: KT) -> KT:
    if t.dtype.kind != "f":
        raise _refuse(fn, f"on a {t.dtype} tensor")
    return t


@keras_layer("TFOpLambda")
def tf_op_lambda(ctx: Context, layer: Layer, inputs: list[KT]) -> KT | list[KT]:
    """A TensorFlow function recorded by tf.keras, translated without executing anything."""
    fn = str(layer.config.get("function"))
    kw = dict(getattr(ctx, "kwargs", {}) or {})
    if fn == "einsum":
        raise _refuse(fn, "(tf.keras does not record the einsum operands in the file; "
                          "use an EinsumDense or Dot layer, or re-save with Keras 3)")
    if not inputs:
        raise _refuse(fn, "without a recorded first argument")
    if fn in _TF_BINARY or fn in _TF_DIVIDE or fn in _TF_FLOORDIV or fn in _TF_COMPARE or \
            fn in _TF_LOGIC or fn == "math.squared_difference":
        return _tf_binary(ctx, fn, inputs, kw)
    if fn in _TF_UNARY:
        _args(fn, kw)
        t = _tensor(fn, inputs[0])
        if fn == "math.logical_not" and t.dtype != bool:
            raise _refuse(fn, f"on a {t.dtype} tensor")
        return t.like(ctx.op(_TF_UNARY[fn], t.value))
    if fn in _TF_REDUCE:
        return _tf_reduce(ctx, fn, _tensor(fn, inputs[0]), kw)
    handler = _tf_functions.get(fn)
    if handler is None:
        raise _refuse(fn)
    return handler(ctx, fn, inputs, kw)


def _tf_binary(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    key = "y"
    _args(fn, kw, key)
    a, b = _operands(ctx, fn, [inputs[0], _second(fn, inputs, kw, key)])
    if fn in _TF_LOGIC:
        if a.dtype != bool:
            raise _refuse(fn, f"on {a.dtype} tensors")
        out = _chain(ctx, _TF_LOGIC[fn], [a, b])
    elif fn in _TF_COMPARE:
        op = _TF_COMPARE[fn]
        out = _chain(ctx, "Equal" if op == "NotEqual" else op, [a, b])
        if op == "NotEqual":
            out = out.like(ctx.op("Not", out.value))
        out.dtype = np.dtype(bool)
        return out
    elif fn in _TF_DIVIDE:
        # Integer true division gives float64 in TF: only floats are translated.
        out = _chain(ctx, "Div", [_float(fn, a), b])
    elif fn in _TF_FLOORDIV:
        # TF's floor division of floats is floor(x / y); integers round differently.
        q = _chain(ctx, "Div", [_float(fn, a), b])
        out = q.like(ctx.op("Floor", q.value))
    elif fn == "math.squared_difference":
        d = _chain(ctx, "Sub", [a, b])
        out = d.like(ctx.op("Mul", d.value, d.value))
    else:
        out = _chain(ctx, _TF_BINARY[fn], [a, b])
    out.dtype = a.dtype
    return out


def _reduce_axes(fn: str, axis, rank: int) -> list[int]:
    if axis is None:
        return list(range(rank))
    axes = sorted({_axis(fn, a, rank) for a in _int_list(fn, "axis", axis)})
    return axes


def _tf_reduce(ctx: Context, fn: str, t: KT, kw: dict) -> KT:
    _args(fn, kw, "axis", "keepdims")
    op = _TF_REDUCE[fn]
    boolean = fn in ("math.reduce_any", "math.reduce_all")
    if boolean != (t.dtype == bool) or (op == "ReduceMean" and t.dtype.kind != "f"):
        raise _refuse(fn, f"on a {t.dtype} tensor")
    keep = kw.get("keepdims")
    if keep not in (None, True, False):
        raise _refuse(fn, f"with keepdims={keep!r}")
    keep = bool(keep)
    t = ctx.unflatten(t)
    axes = _reduce_axes(fn, kw.get("axis"), t.rank)
    x = ctx.op("Cast", t.value, to=6) if boolean else t.value  # ReduceMax/Min take no bool
    y = reduce(ctx, op, x, [t.phys_axis(a) for a in axes], keep) if axes else \
        ctx.op("Identity", x)
    if boolean:
        y = ctx.op("Cast", y, to=9)
    if keep:
        shape = [1 if i in axes else d for i, d in enumerate(t.shape)]
        return _kt(ctx, y, shape, t.dtype, t.perm)
    shape = [d for i, d in enumerate(t.shape) if i not in axes]
    return _kt(ctx, y, shape, t.dtype, _perm_without(t.perm, axes))


# -- element-wise functions with arguments ------------------------------------------------------

@tf_function("nn.relu6")
def _tf_relu6(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw)
    t = _float(fn, _tensor(fn, inputs[0]))
    return t.like(ctx.op("Clip", t.value, _c(ctx, 0, t.dtype), _c(ctx, 6, t.dtype)))


@tf_function("math.square")
def _tf_square(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw)
    t = _tensor(fn, inputs[0])
    return t.like(ctx.op("Mul", t.value, t.value))


@tf_function("math.rsqrt")
def _tf_rsqrt(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw)
    t = _float(fn, _tensor(fn, inputs[0]))
    return t.like(ctx.op("Reciprocal", ctx.op("Sqrt", t.value)))


@tf_function("math.log_sigmoid")
def _tf_log_sigmoid(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw)
    t = _float(fn, _tensor(fn, inputs[0]))
    return t.like(ctx.op("Neg", ctx.op("Softplus", ctx.op("Neg", t.value))))


@tf_function("nn.silu", "nn.swish")
def _tf_silu(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "beta")
    t = _float(fn, _tensor(fn, inputs[0]))
    beta = kw.get("beta", 1.0)
    if isinstance(beta, KT) or not isinstance(beta, (int, float)):
        raise _refuse(fn, f"with beta={beta!r}")
    z = t.value if beta == 1.0 else ctx.op("Mul", t.value, _c(ctx, beta, t.dtype))
    return t.like(ctx.op("Mul", t.value, ctx.op("Sigmoid", z)))


@tf_function("nn.gelu")
def _tf_gelu(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "approximate")
    t = _float(fn, _tensor(fn, inputs[0]))
    x, op, dt = t.value, ctx.op, t.dtype
    if kw.get("approximate", False):
        # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = op("Mul", op("Mul", x, x), x)
        inner = op("Mul", op("Add", x, op("Mul", cube, _c(ctx, 0.044715, dt))),
                   _c(ctx, math.sqrt(2.0 / math.pi), dt))
        gate = op("Add", op("Tanh", inner), _c(ctx, 1.0, dt))
    else:  # 0.5 x (1 + erf(x / sqrt(2)))
        gate = op("Add", op("Erf", op("Mul", x, _c(ctx, 1.0 / math.sqrt(2.0), dt))),
                  _c(ctx, 1.0, dt))
    return t.like(op("Mul", op("Mul", x, _c(ctx, 0.5, dt)), gate))


@tf_function("nn.leaky_relu")
def _tf_leaky_relu(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "alpha")
    t = _float(fn, _tensor(fn, inputs[0]))
    alpha = kw.get("alpha", 0.2)
    if isinstance(alpha, KT) or not isinstance(alpha, (int, float)):
        raise _refuse(fn, f"with alpha={alpha!r}")
    return t.like(ctx.op("LeakyRelu", t.value, alpha=float(alpha)))


@tf_function("clip_by_value")
def _tf_clip(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "clip_value_min", "clip_value_max")
    t = _tensor(fn, inputs[0])
    if "clip_value_min" not in kw or "clip_value_max" not in kw:
        raise _refuse(fn, "without both bounds")
    t, lo, hi = _operands(ctx, fn, [t, kw["clip_value_min"], kw["clip_value_max"]])
    # TF takes the minimum with the upper bound first, then the maximum with the lower one.
    out = _chain(ctx, "Max", [_chain(ctx, "Min", [t, hi]), lo])
    out.dtype = t.dtype
    return out


@tf_function("cast", "dtypes.cast")
def _tf_cast(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "dtype")
    t = _tensor(fn, inputs[0])
    name = kw.get("dtype")
    try:
        dtype = np.dtype(str(name))
        onnx_type = ir.DataType.from_numpy(dtype)
    except (TypeError, ValueError) as exc:
        raise _refuse(fn, f"to dtype {name!r}") from exc
    if dtype.kind not in "biuf":
        raise _refuse(fn, f"to dtype {name!r}")
    return t.like(ctx.op("Cast", t.value, to=int(onnx_type)), dtype=dtype)


@tf_function("math.add_n")
def _tf_add_n(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw)
    ts = _operands(ctx, fn, inputs)
    out = _chain(ctx, "Add", ts) if len(ts) > 1 else ts[0].like(ctx.op("Identity", ts[0].value))
    out.dtype = ts[0].dtype
    return out


@tf_function("where", "where_v2")
def _tf_where(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "x", "y")
    cond = _tensor(fn, inputs[0])
    if "x" not in kw or "y" not in kw or kw["x"] is None or kw["y"] is None:
        raise _refuse(fn, "without x and y (the indices form)")
    if cond.dtype != bool:
        raise _refuse(fn, f"with a {cond.dtype} condition")
    x, y = _operands(ctx, fn, [kw["x"], kw["y"]])
    parts = [cond, x, y]
    perm, (c, a, b) = ctx.common_layout(parts)
    shape = _broadcast_shape([p.shape for p in parts])
    return _kt(ctx, ctx.op("Where", c, a, b), shape, x.dtype, perm)


@tf_function("math.l2_normalize", "nn.l2_normalize", "linalg.l2_normalize")
def _tf_l2_normalize(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "axis", "epsilon")
    t = ctx.unflatten(_float(fn, _tensor(fn, inputs[0])))
    eps = kw.get("epsilon", 1e-12)
    if isinstance(eps, KT) or not isinstance(eps, (int, float)):
        raise _refuse(fn, f"with epsilon={eps!r}")
    axes = [t.phys_axis(a) for a in _reduce_axes(fn, kw.get("axis"), t.rank)]
    x, op = t.value, ctx.op
    ss = reduce(ctx, "ReduceSum", op("Mul", x, x), axes, True)
    inv = op("Reciprocal", op("Sqrt", op("Max", ss, _c(ctx, eps, t.dtype))))
    return t.like(op("Mul", x, inv))


@tf_function("one_hot")
def _tf_one_hot(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "depth", "on_value", "off_value", "axis", "dtype")
    t = _tensor(fn, inputs[0])
    if t.dtype.kind not in "iu":
        raise _refuse(fn, f"on {t.dtype} indices")
    depth = _int_arg(fn, "depth", kw.get("depth"))
    if kw.get("axis") not in (None, -1):
        raise _refuse(fn, f"with axis={kw.get('axis')!r}")
    on, off = kw.get("on_value"), kw.get("off_value")
    dtype = np.dtype(str(kw["dtype"])) if kw.get("dtype") is not None else None
    for v in (on, off):
        if v is not None and (isinstance(v, KT) or not isinstance(v, (int, float))):
            raise _refuse(fn, f"with on/off value {v!r}")
    if dtype is None:
        dtype = np.dtype(np.float32) if on is None and off is None else \
            np.asarray(on if on is not None else off).dtype
        dtype = np.dtype(np.float32) if dtype == np.float64 else \
            np.dtype(np.int32) if dtype == np.int64 else dtype
    if dtype.kind not in "biuf":
        raise _refuse(fn, f"with dtype {dtype}")
    # Indices outside [0, depth) give an all-"off" row in TF, which Equal reproduces.
    idx = ctx.op("Unsqueeze", ctx.op("Cast", ctx.logical(t), to=7), ints(ctx, [-1], "axes"))
    hit = ctx.op("Equal", idx, ctx.const(np.arange(depth, dtype=np.int64), "depth"))
    y = ctx.op("Where", hit, _c(ctx, 1 if on is None else on, dtype),
               _c(ctx, 0 if off is None else off, dtype))
    return KT(y, (*t.shape, depth), dtype)


# -- reductions to an index, softmax ------------------------------------------------------------

@tf_function("math.argmax", "math.argmin", "argmax", "argmin")
def _tf_argmax(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "axis", "output_type")
    t = ctx.unflatten(_tensor(fn, inputs[0]))
    axis = _axis(fn, 0 if kw.get("axis") is None else kw["axis"], t.rank)
    out_type = str(kw.get("output_type") or "int64")
    if out_type not in ("int64", "int32"):
        raise _refuse(fn, f"with output_type={out_type!r}")
    op = "ArgMax" if fn.endswith("argmax") else "ArgMin"
    # Ties: TF and ONNX (select_last_index=0) both give the first index.
    y = ctx.op(op, t.value, axis=t.phys_axis(axis), keepdims=0, select_last_index=0)
    if out_type == "int32":
        y = ctx.op("Cast", y, to=6)
    shape = [d for i, d in enumerate(t.shape) if i != axis]
    return _kt(ctx, y, shape, np.dtype(out_type), _perm_without(t.perm, [axis]))


@tf_function("nn.softmax", "math.softmax", "nn.log_softmax", "math.log_softmax")
def _tf_softmax(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "axis")
    t = ctx.unflatten(_float(fn, _tensor(fn, inputs[0])))
    axis = _axis(fn, -1 if kw.get("axis") is None else kw["axis"], t.rank)
    op = "LogSoftmax" if fn.endswith("log_softmax") else "Softmax"
    return t.like(ctx.op(op, t.value, axis=t.phys_axis(axis)))


# -- shape functions ----------------------------------------------------------------------------

def _merged_dims(ts: list[KT], skip: int) -> list:
    shape = []
    for i in range(ts[0].rank):
        known = [t.shape[i] for t in ts if isinstance(t.shape[i], int)]
        shape.append(known[0] if known and i != skip else None)
    return shape


def _tensor_list(fn: str, inputs: list[KT]) -> list[KT]:
    ts = [_tensor(fn, t) for t in inputs]
    if any(t.rank != ts[0].rank for t in ts) or any(t.dtype != ts[0].dtype for t in ts):
        raise _refuse(fn, "on tensors of different ranks or dtypes")
    return ts


@tf_function("concat")
def _tf_concat(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "axis")
    ts = _tensor_list(fn, inputs)
    if ts[0].rank == 0:
        raise _refuse(fn, "on scalars")
    axis = _axis(fn, kw.get("axis"), ts[0].rank)
    perm, values = ctx.common_layout(ts)
    ref = KT(values[0], ts[0].shape, ts[0].dtype, perm)
    y = ctx.op("Concat", *values, axis=ref.phys_axis(axis)) if len(values) > 1 else \
        ctx.op("Identity", values[0])
    shape = _merged_dims(ts, axis)
    dims = [t.shape[axis] for t in ts]
    shape[axis] = sum(dims) if all(isinstance(d, int) for d in dims) else None
    return _kt(ctx, y, shape, ts[0].dtype, perm)


@tf_function("stack")
def _tf_stack(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "axis")
    ts = _tensor_list(fn, inputs)
    axis = _axis(fn, kw.get("axis", 0), ts[0].rank + 1)
    axes = ints(ctx, [axis], "axes")
    values = [ctx.op("Unsqueeze", ctx.logical(t), axes) for t in ts]
    y = ctx.op("Concat", *values, axis=axis) if len(values) > 1 else values[0]
    shape = _merged_dims(ts, -1)
    shape.insert(axis, len(ts))
    return KT(y, tuple(shape), ts[0].dtype)


@tf_function("unstack")
def _tf_unstack(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> list[KT]:
    _args(fn, kw, "axis")
    t = ctx.unflatten(_tensor(fn, inputs[0]))
    axis = _axis(fn, kw.get("axis", 0), t.rank)
    n = t.shape[axis]
    if not isinstance(n, int):
        raise _refuse(fn, "along an axis of unknown size")
    ax = t.phys_axis(axis)
    parts = ctx.op("Split", t.value, ints(ctx, [1] * n, "split"), axis=ax, outputs=n)
    parts = [parts] if n == 1 else list(parts)
    shape = [d for i, d in enumerate(t.shape) if i != axis]
    perm = _perm_without(t.perm, [axis])
    return [_kt(ctx, ctx.op("Squeeze", p, ints(ctx, [ax], "axes")), shape, t.dtype, perm)
            for p in parts]


@tf_function("split")
def _tf_split(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> list[KT]:
    _args(fn, kw, "num_or_size_splits", "axis")
    t = ctx.unflatten(_tensor(fn, inputs[0]))
    axis = _axis(fn, kw.get("axis", 0), t.rank)
    n = t.shape[axis]
    spec = kw.get("num_or_size_splits")
    if isinstance(spec, (list, tuple)) or (isinstance(spec, KT) and spec.const is not None):
        sizes = _int_list(fn, "num_or_size_splits", spec)
        if sizes.count(-1) == 1 and isinstance(n, int):
            sizes[sizes.index(-1)] = n - sum(s for s in sizes if s != -1)
    else:
        k = _int_arg(fn, "num_or_size_splits", spec)
        if not isinstance(n, int) or k <= 0 or n % k:
            raise _refuse(fn, f"into {k} parts of an axis of size {n}")
        sizes = [n // k] * k
    if any(s < 0 for s in sizes) or (isinstance(n, int) and sum(sizes) != n):
        raise UnsupportedFeatureError(f"TFOpLambda {fn!r}: sizes {sizes} do not add up to {n}")
    ax = t.phys_axis(axis)
    parts = ctx.op("Split", t.value, ints(ctx, sizes, "split"), axis=ax, outputs=len(sizes))
    parts = [parts] if len(sizes) == 1 else list(parts)
    out = []
    for p, s in zip(parts, sizes):
        shape = list(t.shape)
        shape[axis] = s
        out.append(_kt(ctx, p, shape, t.dtype, t.perm))
    return out


@tf_function("reshape")
def _tf_reshape(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "shape")
    t = _tensor(fn, inputs[0])
    target = kw.get("shape")
    if isinstance(target, KT) and target.const is None:
        raise _refuse(fn, "with a computed shape")
    dims = _int_list(fn, "shape", target)
    if any(d < -1 for d in dims) or dims.count(-1) > 1:
        raise UnsupportedFeatureError(f"TFOpLambda {fn!r}: invalid shape {dims}")
    if 0 in dims:  # TF means a zero-size axis, ONNX would copy the input's
        raise _refuse(fn, f"with shape {dims}")
    shape = [d if d >= 0 else None for d in dims]
    if -1 in dims and all(isinstance(d, int) for d in t.shape):
        known = math.prod(d for d in dims if d != -1)
        total = math.prod(t.shape)
        if known == 0 or total % known:
            raise UnsupportedFeatureError(f"TFOpLambda {fn!r}: cannot reshape {t.shape} to {dims}")
        shape[dims.index(-1)] = total // known
    elif -1 in dims and dims.index(-1) == 0 and t.shape and t.shape[0] is None and \
            all(isinstance(d, int) for d in t.shape[1:]):
        # The usual reshape(x, [-1, ...]) of a batch: check the rest divides evenly.
        known = math.prod(dims[1:])
        if known == 0 or math.prod(t.shape[1:]) % known:
            raise UnsupportedFeatureError(f"TFOpLambda {fn!r}: cannot reshape {t.shape} to {dims}")
    y = ctx.op("Reshape", ctx.logical(t), ints(ctx, dims, "shape"))
    return KT(y, tuple(shape), t.dtype)


@tf_function("transpose", "compat.v1.transpose")
def _tf_transpose(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "perm")
    t = ctx.unflatten(_tensor(fn, inputs[0]))
    p = kw.get("perm")
    p = list(range(t.rank))[::-1] if p is None else _int_list(fn, "perm", p)
    if sorted(p) != list(range(t.rank)):
        raise UnsupportedFeatureError(f"TFOpLambda {fn!r}: perm {p} does not fit rank {t.rank}")
    shape = [t.shape[a] for a in p]
    if t.perm is not None:
        # Only the logical order changes: physical axis j holds old logical axis perm[j],
        # which is new logical axis p.index(perm[j]).
        new_perm = [p.index(a) for a in t.perm]
        return _kt(ctx, ctx.op("Identity", t.value), shape, t.dtype, new_perm)
    y = ctx.op("Transpose", t.value, perm=p) if p != list(range(t.rank)) else \
        ctx.op("Identity", t.value)
    return KT(y, tuple(shape), t.dtype)


@tf_function("expand_dims")
def _tf_expand_dims(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "axis")
    t = _tensor(fn, inputs[0])
    axis = _axis(fn, kw.get("axis"), t.rank + 1)
    y = ctx.op("Unsqueeze", ctx.logical(t), ints(ctx, [axis], "axes"))
    shape = list(t.shape)
    shape.insert(axis, 1)
    return KT(y, tuple(shape), t.dtype)


@tf_function("squeeze", "compat.v1.squeeze")
def _tf_squeeze(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "axis")
    t = ctx.unflatten(_tensor(fn, inputs[0]))
    if kw.get("axis") is None:
        if not all(isinstance(d, int) for d in t.shape):
            # Like TF, every axis of size 1 at run time goes (the batch too, when it is 1).
            y = ctx.op("Squeeze", ctx.logical(t))
            return KT(y, tuple(d for d in t.shape if d != 1), t.dtype)
        axes = [i for i, d in enumerate(t.shape) if d == 1]
    else:
        axes = sorted({_axis(fn, a, t.rank) for a in _int_list(fn, "axis", kw["axis"])})
        for a in axes:
            if isinstance(t.shape[a], int) and t.shape[a] != 1:
                raise UnsupportedFeatureError(f"TFOpLambda {fn!r}: axis {a} has size {t.shape[a]}, not 1")
    if not axes:
        return t.like(ctx.op("Identity", t.value))
    y = ctx.op("Squeeze", t.value, ints(ctx, [t.phys_axis(a) for a in axes], "axes"))
    shape = [d for i, d in enumerate(t.shape) if i not in axes]
    return _kt(ctx, y, shape, t.dtype, _perm_without(t.perm, axes))


@tf_function("tile")
def _tf_tile(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "multiples")
    t = ctx.unflatten(_tensor(fn, inputs[0]))
    reps = _int_list(fn, "multiples", kw.get("multiples"))
    if len(reps) != t.rank or any(r < 0 for r in reps):
        raise UnsupportedFeatureError(f"TFOpLambda {fn!r}: multiples {reps} do not fit rank {t.rank}")
    phys = [reps[a] for a in (t.perm or range(t.rank))]
    y = ctx.op("Tile", t.value, ints(ctx, phys, "repeats"))
    shape = [d * r if isinstance(d, int) else (0 if r == 0 else None if r != 1 else d)
             for d, r in zip(t.shape, reps)]
    return _kt(ctx, y, shape, t.dtype, t.perm)


@tf_function("linalg.matmul", "matmul", "__operators__.matmul")
def _tf_matmul(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "b", "y", "transpose_a", "transpose_b", "adjoint_a", "adjoint_b")
    a = _tensor(fn, inputs[0])
    b = kw.get("b", kw.get("y", inputs[1] if len(inputs) > 1 else None))
    if b is None:
        raise _refuse(fn, "whose second operand the file does not record")
    a, b = _operands(ctx, fn, [a, b])
    if a.rank < 2 or b.rank < 2:
        raise _refuse(fn, "on tensors of rank below 2")
    va, vb = ctx.logical(a), ctx.logical(b)
    sa, sb = list(a.shape), list(b.shape)
    for t_flag, adj_flag, which in (("transpose_a", "adjoint_a", "a"),
                                    ("transpose_b", "adjoint_b", "b")):
        if bool(kw.get(t_flag)) or bool(kw.get(adj_flag)):  # adjoint = transpose (real)
            if bool(kw.get(t_flag)) and bool(kw.get(adj_flag)):
                raise _refuse(fn, f"with both {t_flag} and {adj_flag}")
            if which == "a":
                r = a.rank
                va = ctx.op("Transpose", va, perm=[*range(r - 2), r - 1, r - 2])
                sa[-2], sa[-1] = sa[-1], sa[-2]
            else:
                r = b.rank
                vb = ctx.op("Transpose", vb, perm=[*range(r - 2), r - 1, r - 2])
                sb[-2], sb[-1] = sb[-1], sb[-2]
    if isinstance(sa[-1], int) and isinstance(sb[-2], int) and sa[-1] != sb[-2]:
        raise UnsupportedFeatureError(f"TFOpLambda {fn!r}: inner dimensions {sa[-1]} and {sb[-2]} differ")
    batch = _broadcast_shape([tuple(sa[:-2]), tuple(sb[:-2])]) if a.rank > 2 or b.rank > 2 \
        else ()
    return KT(ctx.op("MatMul", va, vb), (*batch, sa[-2], sb[-1]), a.dtype)


@tf_function("gather", "compat.v1.gather")
def _tf_gather(ctx: Context, fn: str, inputs: list[KT], kw: dict) -> KT:
    _args(fn, kw, "indices", "axis")
    t = ctx.unflatten(_tensor(fn, inputs[0]))
    axis = _axis(fn, 0 if kw.get("axis") is None else kw["axis"], t.rank)
    idx = kw.get("indices")
    if isinstance(idx, KT) and idx.const is None:
        if idx.dtype.kind not in "iu":
            raise _refuse(fn, f"with {idx.dtype} indices")
        iv, ishape = ctx.logical(idx), idx.shape
    else:
        arr = np.asarray(idx.const if isinstance(idx, KT) else idx)
        if arr.dtype.kind not in "iu" or arr.size == 0:
            raise _refuse(fn, f"with indices {idx!r}")
        n = t.shape[axis]
        if isinstance(n, int) and (arr.min() < 0 or arr.max() >= n):
            raise UnsupportedFeatureError(f"TFOpLambda {fn!r}: indices {arr.tolist()} out of range [0, {n})")
        iv, ishape = ctx.const(arr.astype(np.int64), "indices"), arr.shape
    if len(ishape) > 1:
        t = ctx.as_logical(t)  # several new axes: gather in the logical order
    y = ctx.op("Gather", t.value, iv, axis=t.phys_axis(axis))
    shape = [*t.shape[:axis], *ishape, *t.shape[axis + 1:]]
    if len(ishape) == 0:
        return _kt(ctx, y, shape, t.dtype, _perm_without(t.perm, [axis]))
    return _kt(ctx, y, shape, t.dtype, t.perm if len(ishape) == 1 else None)


# -- Python indexing ----------------------------------------------------------------------------

def _slice_items(spec, rank: int) -> list[tuple]:
    """The index expression as ('slice', start, stop, step) / ('index', i) / ('new',) items,
    the ellipsis expanded and full slices added for the trailing axes."""
    spec = spec if isinstance(spec, list) else [spec]
    items: list[tuple] = []
    for s in spec:
        if s is None:
            items.append(("new",))
        elif isinstance(s, dict) and s.get("class_name") == "__ellipsis__":
            items.append(("ellipsis",))
        elif isinstance(s, dict) and set(s) <= {"start", "stop", "step"}:
            vals = [s.get(k) for k in ("start", "stop", "step")]
            for v in vals:
                if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                    raise UnsupportedFeatureError(f"indexing with the bound {v!r} is not supported (only "
                                     "constant integers)")
            if vals[2] == 0:
                raise UnsupportedFeatureError("indexing: a slice step cannot be zero")
            items.append(("slice", *vals))
        elif isinstance(s, int) and not isinstance(s, bool):
            items.append(("index", s))
        else:
            raise UnsupportedFeatureError(f"indexing with {s!r} is not supported")
    if sum(1 for i in items if i[0] == "ellipsis") > 1:
        raise UnsupportedFeatureError("indexing: an index can only have one ellipsis")
    used = sum(1 for i in items if i[0] in ("slice", "index"))
    if used > rank:
        raise UnsupportedFeatureError(f"indexing: {used} indices for a tensor of rank {rank}")
    full = ("slice", None, None, None)
    if not any(i[0] == "ellipsis" for i in items):
        items.append(("ellipsis",))
    k = next(j for j, i in enumerate(items) if i[0] == "ellipsis")
    return items[:k] + [full] * (rank - used) + items[k + 1:]


@keras_layer("SlicingOpLambda")
def slicing_op_lambda(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    """``x[...]`` on a Keras 2 tensor: constant slices, integer indices, ``...`` and
    ``None`` (new axes), as one Slice, then Squeeze and Unsqueeze."""
    fn = str(layer.config.get("function"))
    if fn != "__operators__.getitem":
        raise UnsupportedFeatureError(f"SlicingOpLambda {fn!r} is not supported")
    kw = dict(getattr(ctx, "kwargs", {}) or {})
    if "slice_spec" not in kw or set(kw) - {"slice_spec", "name"}:
        raise UnsupportedFeatureError(f"SlicingOpLambda with arguments {sorted(kw)} is not supported")
    return index_tensor(ctx, _tensor(fn, inputs[0]), kw["slice_spec"])


def index_tensor(ctx: Context, t: KT, spec) -> KT:
    """``t[spec]`` (NumPy basic indexing; ``spec`` as tf.keras saves it: ints, ``None``,
    ``{"start", "stop", "step"}`` slices and an ellipsis dict) in ``t``'s own layout."""
    t = ctx.unflatten(t)
    items = _slice_items(spec, t.rank)
    if any(i[0] == "new" for i in items):
        t = ctx.as_logical(t)
    starts, ends, axes, steps, dropped = [], [], [], [], []
    shape: list = []
    a = 0
    for item in items:
        if item[0] == "new":
            shape.append(1)
            continue
        d = t.shape[a]
        if item[0] == "index":
            i = item[1]
            if isinstance(d, int) and not -d <= i < d:
                raise UnsupportedFeatureError(f"indexing: index {i} is out of range for an axis of size {d}")
            starts.append(i)
            ends.append(_INT64_MAX if i == -1 else i + 1)
            axes.append(t.phys_axis(a))
            steps.append(1)
            dropped.append(a)
        else:
            _, start, stop, step = item
            step = 1 if step is None else step
            if (start, stop, step) != (None, None, 1):
                if step > 0:
                    starts.append(0 if start is None else start)
                    ends.append(_INT64_MAX if stop is None else stop)
                else:
                    starts.append(_INT64_MAX if start is None else start)
                    ends.append(_INT64_MIN if stop is None else stop)
                axes.append(t.phys_axis(a))
                steps.append(step)
                shape.append(len(range(*slice(start, stop, step).indices(d)))
                             if isinstance(d, int) else None)
            else:
                shape.append(d)
        a += 1
    y = t.value
    if axes:
        y = ctx.op("Slice", y, ints(ctx, starts, "starts"), ints(ctx, ends, "ends"),
                   ints(ctx, axes, "axes"), ints(ctx, steps, "steps"))
    perm = t.perm
    if dropped:
        y = ctx.op("Squeeze", y, ints(ctx, [t.phys_axis(x) for x in dropped], "axes"))
        perm = _perm_without(perm, dropped)
    new = [j for j, item in enumerate(i for i in items if i[0] != "index") if item[0] == "new"]
    if new:
        y = ctx.op("Unsqueeze", y, ints(ctx, new, "axes"))
    if y is t.value:
        y = ctx.op("Identity", y)
    return _kt(ctx, y, shape, t.dtype, perm)


def supported(fn: str) -> bool:
    """Whether a TFOpLambda layer calling ``tf.<fn>`` has a translation (einsum has not: tf.keras
    does not record its operands)."""
    return fn != "einsum" and (
        fn in _tf_functions or fn == "math.squared_difference"
        or any(fn in table for table in (_TF_BINARY, _TF_DIVIDE, _TF_FLOORDIV, _TF_COMPARE,
                                         _TF_LOGIC, _TF_UNARY, _TF_REDUCE)))


def why_not(fn: str) -> str:
    """What to say after an unsupported function's name ('' when there is nothing to add)."""
    if fn == "einsum":
        return (" (tf.keras does not record the einsum operands in the file; use an EinsumDense"
                " or Dot layer, or re-save with Keras 3)")
    return ""
