"""A small writer of Torch7 ``torch.save`` files for the tests (no Torch7 needed).

It writes what Torch7's ``File:writeObject`` writes: type tags, object indices with
back-references for objects met again (by identity), Torch objects as a version string, a
class name and their fields as a table, tensors as sizes/strides/offset over a storage. Binary
(``long`` of 8 or 4 bytes) and ASCII encodings.

    save(path, Obj("nn.Sequential", {"modules": [conv, relu]}))
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

_NAMES = {np.dtype(np.float32): "Float", np.dtype(np.float64): "Double",
          np.dtype(np.float16): "Half", np.dtype(np.uint8): "Byte", np.dtype(np.int8): "Char",
          np.dtype(np.int16): "Short", np.dtype(np.int32): "Int", np.dtype(np.int64): "Long"}


class Obj:
    """A Torch class instance written as its fields (nn modules, nngraph nodes)."""

    def __init__(self, class_name: str, fields: dict | None = None, version: int | None = 1):
        self.class_name = class_name
        self.fields = fields if fields is not None else {}
        self.version = version  # None: a file from before Torch's versioning ("V 1")


class Storage:
    def __init__(self, array: np.ndarray, cuda: bool = False):
        self.array = np.ascontiguousarray(array).reshape(-1)
        name = _NAMES[self.array.dtype]
        if cuda:
            name = "Cuda" if name == "Float" else "Cuda" + name
        self.class_name = f"torch.{name}Storage"


class Tensor:
    def __init__(self, array: np.ndarray | None = None, *, storage: Storage | None = None,
                 size=None, stride=None, offset: int = 0, cuda: bool = False):
        if storage is None:
            array = np.ascontiguousarray(array)
            storage = Storage(array, cuda=cuda) if array.size else None
            # An empty tensor (torch.Tensor()) has no dimensions and no storage.
            size = array.shape if array.size else ()
            stride = tuple(s // array.itemsize for s in array.strides) if array.size else ()
            dtype = array.dtype
        else:
            dtype = storage.array.dtype
        self.storage = storage
        self.size = tuple(int(d) for d in size)
        self.stride = tuple(int(s) for s in stride)
        self.offset = offset
        name = _NAMES[np.dtype(dtype)]
        if cuda:
            name = "Cuda" if name == "Float" else "Cuda" + name
        self.class_name = f"torch.{name}Tensor"


class Func:
    """A Lua function: bytecode bytes (never meant to run) and upvalues."""

    def __init__(self, bytecode: bytes = b"\x1bLuaQ\x00\x01\x04\x08\x04\x08\x00",
                 upvalues: Any = None, kind: int = 8):
        self.bytecode = bytecode
        self.upvalues = upvalues if upvalues is not None else []
        self.kind = kind  # 6 (plain), 7 (legacy recursive), 8 (recursive)


class Ref:
    """Another object used as a table key (Lua tables may be keys): written as that object."""

    def __init__(self, target: Any):
        self.target = target

    def __hash__(self) -> int:
        return id(self.target)

    def __eq__(self, other) -> bool:
        return isinstance(other, Ref) and other.target is self.target


def tensor(array, cuda: bool = False) -> Tensor:
    return Tensor(np.asarray(array), cuda=cuda)


def empty(dtype=np.float32) -> Tensor:
    return Tensor(np.zeros((0,), dtype=dtype))


def longs(values) -> Storage:
    return Storage(np.asarray(list(values), dtype=np.int64))


class Writer:
    def __init__(self, ascii: bool = False, long_size: int = 8):
        self.ascii = ascii
        self.long_size = long_size
        self.out = bytearray()
        self.index: dict[int, int] = {}
        self.keep: list[Any] = []

    # -- primitives (File's writeInt/writeLong/writeDouble/writeChar) ---------------------------
    def ints(self, values, fmt="<i", text="%d"):
        values = list(values)
        if self.ascii:
            if values:
                self.out += (" ".join(text % v for v in values) + "\n").encode()
        else:
            for v in values:
                self.out += struct.pack(fmt, v)

    def int(self, v):
        self.ints([int(v)])

    def longs(self, values):
        self.ints([int(v) for v in values], "<q" if self.long_size == 8 else "<i", "%d")

    def double(self, v):
        if self.ascii:
            self.out += (repr(float(v)) + "\n").encode()
        else:
            self.out += struct.pack("<d", float(v))

    def chars(self, data: bytes):
        self.out += data
        if self.ascii and data:
            self.out += b"\n"

    def string(self, s: str | bytes):
        data = s.encode() if isinstance(s, str) else s
        self.int(len(data))
        self.chars(data)

    # -- objects -------------------------------------------------------------------------------
    def _indexed(self, obj) -> bool:
        """Write the index; True if the object was written before (a back-reference)."""
        key = id(obj)
        if key in self.index:
            self.int(self.index[key])
            return True
        self.index[key] = len(self.index) + 1
        self.keep.append(obj)
        self.int(self.index[key])
        return False

    def obj(self, value: Any) -> None:
        if isinstance(value, Ref):
            value = value.target
        if value is None:
            self.int(0)
        elif isinstance(value, bool):
            self.int(5)
            self.int(1 if value else 0)
        elif isinstance(value, (int, float, np.integer, np.floating)):
            self.int(1)
            self.double(float(value))
        elif isinstance(value, (str, bytes)):
            self.int(2)
            self.string(value)
        elif isinstance(value, Func):
            self.int(value.kind)
            if value.kind != 6 and self._indexed(value):
                return
            self.string(value.bytecode)
            self.obj(value.upvalues)
        elif isinstance(value, (dict, list, tuple)):
            self.int(3)
            if self._indexed(value):
                return
            items = list(value.items()) if isinstance(value, dict) else \
                [(i + 1, v) for i, v in enumerate(value)]
            self.int(len(items))
            for k, v in items:
                self.obj(k)
                self.obj(v)
        elif isinstance(value, (Obj, Tensor, Storage)):
            self.int(4)
            if self._indexed(value):
                return
            version = getattr(value, "version", 1)
            if version is not None:
                self.string(f"V {version}")
            self.string(value.class_name)
            if isinstance(value, Obj):
                self.obj(value.fields)
            elif isinstance(value, Storage):
                self.longs([value.array.size])
                self.storage_data(value.array)
            else:
                self.int(len(value.size))
                self.longs(value.size)
                self.longs(value.stride)
                self.longs([value.offset + 1])
                self.obj(value.storage)
        else:
            raise TypeError(f"cannot write {type(value).__name__}")

    def storage_data(self, array: np.ndarray) -> None:
        if array.dtype.itemsize == 1:
            self.chars(array.tobytes())
        elif self.ascii:
            if array.size:
                fmt = "%.9g" if array.dtype == np.float32 else "%.17g" \
                    if array.dtype.kind == "f" else "%d"
                self.out += (" ".join(fmt % v for v in array.tolist()) + "\n").encode()
        elif array.dtype == np.int64:
            self.longs(array.tolist())
        else:
            self.out += array.astype(array.dtype.newbyteorder("<")).tobytes()


def dumps(obj: Any, ascii: bool = False, long_size: int = 8) -> bytes:
    w = Writer(ascii=ascii, long_size=long_size)
    w.obj(obj)
    return bytes(w.out)


def save(path, obj: Any, ascii: bool = False, long_size: int = 8) -> None:
    with open(path, "wb") as f:
        f.write(dumps(obj, ascii=ascii, long_size=long_size))


# -- nn modules as torch7's nn writes them (fields of the Lua objects) -------------------------
def _base(**fields) -> dict:
    d = {"output": empty(), "gradInput": empty(), "train": False, "_type": "torch.FloatTensor"}
    d.update(fields)
    return d


def module(class_name: str, **fields) -> Obj:
    return Obj(class_name, _base(**fields))


def sequential(*modules, class_name="nn.Sequential") -> Obj:
    return module(class_name, modules=list(modules))


def conv(rng, nin, nout, k, stride=1, pad=0, *, kw=None, sw=None, pw=None, bias=True,
         dilation=None, mm=False, groups=None) -> Obj:
    kh, kw = k, kw or k
    sh, sw = stride, sw or stride
    ph, pw = pad, pad if pw is None else pw
    g = groups or 1
    w = (rng.standard_normal((nout, nin // g, kh, kw)) / np.sqrt(nin * kh * kw)).astype(
        np.float32)
    fields = dict(nInputPlane=nin, nOutputPlane=nout, kW=kw, kH=kh, dW=sw, dH=sh, padW=pw,
                  padH=ph, weight=tensor(w.reshape(nout, -1) if mm else w),
                  gradWeight=tensor(np.zeros_like(w)))
    if bias:
        fields["bias"] = tensor(rng.standard_normal(nout).astype(np.float32) * 0.1)
    name = "nn.SpatialConvolutionMM" if mm else "nn.SpatialConvolution"
    if dilation:
        name = "nn.SpatialDilatedConvolution"
        fields.update(dilationW=dilation, dilationH=dilation)
    if groups:
        name = "cudnn.SpatialConvolution"
        fields["groups"] = groups
    return module(name, **fields)


def linear(rng, nin, nout, bias=True) -> Obj:
    w = (rng.standard_normal((nout, nin)) / np.sqrt(nin)).astype(np.float32)
    fields = dict(weight=tensor(w), gradWeight=tensor(np.zeros_like(w)))
    if bias:
        fields["bias"] = tensor(rng.standard_normal(nout).astype(np.float32) * 0.1)
    return module("nn.Linear", **fields)


def batchnorm(rng, n, spatial=True, affine=True, eps=1e-5, old_std=False) -> Obj:
    mean = rng.standard_normal(n).astype(np.float32) * 0.1
    var = rng.uniform(0.5, 1.5, n).astype(np.float32)
    fields = dict(eps=eps, momentum=0.1, affine=affine, running_mean=tensor(mean))
    if old_std:
        fields["running_std"] = tensor((1.0 / np.sqrt(var + eps)).astype(np.float32))
    else:
        fields["running_var"] = tensor(var)
    if affine:
        fields["weight"] = tensor(rng.uniform(0.5, 1.5, n).astype(np.float32))
        fields["bias"] = tensor(rng.standard_normal(n).astype(np.float32) * 0.1)
    name = "nn.SpatialBatchNormalization" if spatial else "nn.BatchNormalization"
    return module(name, **fields)
