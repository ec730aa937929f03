"""Build the IR graph from a Torch7 model: the one input ``input``, one translator call per
module (containers and ``nngraph`` graphs recurse), the outputs.

``.t7`` files do not record the input shape: it comes from ``--input input:1,3,224,224``.
Static shapes are tracked as the graph is built (View, Reshape, JoinTable, DepthConcat and
pooling's ceil rounding need them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from modelport.errors import InvalidModelError, UnsafeModelError, UnsupportedOpsError
from modelport.graph_ir import GraphBuilder, lazy_tensor
from modelport.graph_ir.metadata import io_key
from modelport.importers.optable import load_translators
from modelport.importers.registry import LoadOptions
from modelport.importers.torch7.reader import (
    LuaFunction,
    LuaTable,
    Storage,
    Tensor,
    TorchObject,
)
from modelport.importers.torch7.reader import load as read_file
from modelport.importers.torch7.table import torch7_module

load_translators("modelport.importers.torch7.modules")

INPUT_NAME = "input"
IO_KEY = io_key("torch7")
_PREFIXES = ("nn.", "cudnn.", "cunn.", "fbcunn.")
_MISSING = object()


def canonical(class_name: str) -> str:
    """``cudnn.SpatialConvolution`` -> ``nn.SpatialConvolution`` (other names unchanged)."""
    for prefix in _PREFIXES:
        if class_name.startswith(prefix):
            return "nn." + class_name[len(prefix):]
    return class_name


def _holds_function(value: Any, depth: int = 0) -> bool:
    if isinstance(value, LuaFunction):
        return True
    if isinstance(value, LuaTable) and depth < 4:
        return any(_holds_function(v, depth + 1) for v in value.items.values())
    return False


class Module:
    """A Torch7 module with typed access to its fields.

    Reading a field that holds a Lua function is refused (modelport never runs Lua);
    functions in fields no translator reads are ignored.
    """

    def __init__(self, obj: TorchObject, name: str, path: str) -> None:
        self.obj = obj
        self.type = canonical(obj.class_name)
        self.class_name = obj.class_name
        self.name = name
        self.path = path

    def fail(self, message: str) -> InvalidModelError:
        return InvalidModelError(f"module {self.name!r} ({self.class_name}): {message}",
                                 path=self.path)

    def has(self, key: str) -> bool:
        return self.obj.get(key) is not None

    def field(self, key: str, default: Any = _MISSING) -> Any:
        value = self.obj.get(key)
        if _holds_function(value):
            raise UnsafeModelError(
                f"module {self.name!r} ({self.class_name}): field {key!r} holds a Lua function; "
                "modelport never runs Lua code stored in a model", path=self.path)
        if value is None:
            if default is _MISSING:
                raise self.fail(f"has no field {key!r}")
            return default
        return value

    def num(self, key: str, default: Any = _MISSING) -> float:
        value = self.field(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if value is default:
                return value
            raise self.fail(f"field {key!r} is not a number ({type(value).__name__})")
        return float(value)

    def int(self, key: str, default: Any = _MISSING) -> int:
        value = self.num(key, default)
        if value is None:
            return None
        if not float(value).is_integer():
            raise self.fail(f"field {key!r} is not an integer ({value})")
        return int(value)

    def bool(self, key: str, default: bool = False) -> bool:
        value = self.field(key, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return value != 0
        raise self.fail(f"field {key!r} is not a boolean")

    def tensor(self, key: str, required: bool = True) -> Tensor | None:
        value = self.field(key, None)
        if value is None or (isinstance(value, Tensor) and value.numel == 0):
            if required:
                raise self.fail(f"has no tensor {key!r}")
            return None
        if not isinstance(value, Tensor):
            raise self.fail(f"field {key!r} is not a tensor ({type(value).__name__})")
        return value

    def ints(self, key: str, default: Any = _MISSING) -> list[int] | None:
        """A LongStorage, a tensor or a table of numbers as a list of ints."""
        value = self.field(key, default)
        if value is None or value is default:
            return value
        if isinstance(value, Storage):
            return [int(v) for v in value.read()]
        if isinstance(value, Tensor):
            return [int(v) for v in value.numpy().reshape(-1)]
        if isinstance(value, LuaTable):
            return [int(v) for v in value.array()]
        if isinstance(value, (int, float)):
            return [int(value)]
        raise self.fail(f"field {key!r} is not a list of sizes")

    def children(self, key: str = "modules") -> list[TorchObject]:
        value = self.field(key, None)
        if value is None:
            return []
        if not isinstance(value, LuaTable):
            raise self.fail(f"field {key!r} is not a table of modules")
        items = value.array()
        for item in items:
            if not isinstance(item, TorchObject):
                raise self.fail(f"{key!r} holds a {type(item).__name__}, not a module")
        return items


def read_tensor(t: Tensor, path: str) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        return t.numpy().astype(np.float32)
    return read


class Context:
    """What a translator sees: the builder, static shapes, weights and recursion into children."""

    def __init__(self, builder: GraphBuilder, options: LoadOptions, path: str) -> None:
        self.b = builder
        self.options = options
        self.path = path
        self.module: Module | None = None
        self.counter = 0
        self._names: dict[int, str] = {}

    # -- shapes and nodes ----------------------------------------------------------------------
    def shape(self, value: ir.Value) -> tuple[int, ...]:
        if isinstance(value, list):
            raise self.module.fail("expects a tensor, got a table")
        return tuple(int(d) for d in value.shape.dims)

    def op(self, op_type: str, *inputs, shape: Sequence[int], dtype=ir.DataType.FLOAT,
           **attrs) -> ir.Value:
        value = self.b.op(op_type, *inputs, **attrs)
        value.shape = ir.Shape([int(d) for d in shape])
        value.type = ir.TensorType(dtype)
        return value

    @property
    def name(self) -> str:
        return self.module.name if self.module else "net"

    def const(self, array, name: str = "const", dtype=np.float32) -> ir.Value:
        return self.b.const(np.asarray(array, dtype=dtype), name=f"{self.name}.{name}")

    def ints(self, values: Sequence[int], name: str = "shape") -> ir.Value:
        return self.b.const(np.asarray(list(values), dtype=np.int64), name=f"{self.name}.{name}")

    def reshape(self, x: ir.Value, shape: Sequence[int]) -> ir.Value:
        shape = [int(d) for d in shape]
        if list(self.shape(x)) == shape:
            return x
        return self.op("Reshape", x, self.ints(shape), shape=shape)

    def weight(self, t: Tensor, shape: Sequence[int], suffix: str,
               transform: Callable[[np.ndarray], np.ndarray] | None = None) -> ir.Value:
        """A tensor field as a lazy float32 initializer of ``shape`` (optionally transformed)."""
        shape = tuple(int(d) for d in shape)
        if t.numel != int(np.prod(shape, dtype=np.int64)):
            raise self.module.fail(f"{suffix} has {t.numel} values ({list(t.size)}), expected "
                                   f"shape {list(shape)}")
        read = read_tensor(t, self.path)
        if transform is not None:
            read = (lambda r, f: lambda: f(r().reshape(shape)))(read, transform)
        return self.b.initializer(f"{self.name}.{suffix}", lazy_tensor(read, np.float32, shape))

    def values(self, x) -> list[ir.Value]:
        if not isinstance(x, list):
            raise self.module.fail("expects a table of inputs (e.g. from a ConcatTable)")
        return x

    def tensor_input(self, x) -> ir.Value:
        if isinstance(x, list):
            raise self.module.fail("expects a tensor, got a table")
        return x

    # -- modules -------------------------------------------------------------------------------
    def wrap(self, obj: TorchObject) -> Module:
        key = id(obj)
        if key not in self._names:
            self.counter += 1
            short = canonical(obj.class_name).split(".")[-1]
            self._names[key] = f"{short}_{self.counter}"
        return Module(obj, self._names[key], self.path)

    def run(self, obj: TorchObject, x):
        m = self.wrap(obj)
        fn = torch7_module.get(m.type)
        if fn is None:  # checked before building; a module reached some other way
            raise UnsupportedOpsError({m.class_name: [m.name]}, path=self.path,
                                      kind="Torch7 module")
        previous, self.module = self.module, m
        try:
            with self.b.layer(m.name):
                return fn(self, m, x)
        finally:
            self.module = previous


# Containers whose children are in ``modules`` (the unsupported-module walk looks inside them).
CONTAINERS = {"nn.Sequential", "nn.Concat", "nn.DepthConcat", "nn.ConcatTable",
              "nn.ParallelTable", "nn.Parallel", "nn.MapTable", "nn.Inception"}


def walk(obj: TorchObject, path: str, seen: set[int] | None = None):
    """Every module reachable from ``obj`` (containers' children, graph nodes' modules)."""
    seen = seen if seen is not None else set()
    if id(obj) in seen:
        return
    seen.add(id(obj))
    yield obj
    kind = canonical(obj.class_name)
    if kind in CONTAINERS:
        modules = obj.get("modules")
        if isinstance(modules, LuaTable):
            for child in modules.array():
                if isinstance(child, TorchObject):
                    yield from walk(child, path, seen)
    elif kind == "nngraph.gModule":
        nodes = obj.get("forwardnodes")
        if isinstance(nodes, LuaTable):
            for node in nodes.array():
                data = node.get("data") if isinstance(node, TorchObject) else None
                module = data.get("module") if isinstance(data, LuaTable) else None
                if isinstance(module, TorchObject):
                    yield from walk(module, path, seen)


def find_model(root: Any, path: str) -> TorchObject:
    """The module stored in the file: the root object, or the one module in a root table."""
    if isinstance(root, TorchObject):
        return root
    if isinstance(root, LuaTable):
        for key in ("model", "net", "network", "protos"):
            value = root.get(key)
            if isinstance(value, TorchObject):
                return value
        found = [v for v in root.items.values() if isinstance(v, TorchObject)]
        if len(found) == 1:
            return found[0]
        keys = ", ".join(repr(k) for k in list(root.items)[:8])
        raise InvalidModelError(
            f"holds a table (keys {keys}) without one model in it; save the nn module itself",
            path=path)
    raise InvalidModelError(
        f"holds a {type(root).__name__}, not an nn module", path=path)


def load(path: str, options: LoadOptions | None = None) -> ir.Model:
    options = options or LoadOptions()
    root, info = read_file(path)
    model = find_model(root, path)
    return build(model, options, path, info)


def build(model: TorchObject, options: LoadOptions, path: str, info: dict | None = None
          ) -> ir.Model:
    shapes = dict(options.input_shapes)
    other = [n for n in shapes if n != INPUT_NAME]
    if other:
        raise InvalidModelError(
            f"a Torch7 model has one input, named {INPUT_NAME!r}; --input names "
            f"{', '.join(repr(n) for n in other)}", path=path)
    dims = shapes.get(INPUT_NAME)
    if not dims:
        raise InvalidModelError(
            "a .t7 file does not record its input shape; give it with --input "
            f"{INPUT_NAME}:1,3,224,224", path=path)
    if not all(isinstance(d, int) and d > 0 for d in dims):
        raise InvalidModelError(
            f"--input {INPUT_NAME} needs fixed positive dims, got {dims}", path=path)

    missing: dict[str, list[str]] = {}
    counter = 0
    for obj in walk(model, path):
        counter += 1
        kind = canonical(obj.class_name)
        if kind not in torch7_module:
            missing.setdefault(obj.class_name, []).append(
                f"{kind.split('.')[-1]}_{counter}")
    if missing:
        raise UnsupportedOpsError(
            missing, path=path, kind="Torch7 module",
            hint="register a translation with `from modelport.importers.torch7 import "
                 "torch7_module`")

    b = GraphBuilder(Path(path).stem or "torch7")
    ctx = Context(b, options, path)
    x = b.input(INPUT_NAME, np.float32, dims)
    out = ctx.run(model, x)
    flat: list[ir.Value] = []

    def flatten(v) -> None:
        if isinstance(v, list):
            for item in v:
                flatten(item)
        else:
            flat.append(v)

    flatten(out)
    io_names = {"inputs": {x.name: INPUT_NAME}, "outputs": {}}
    for i, value in enumerate(flat):
        name = "output" if i == 0 else f"output_{i + 1}"
        value = b.output(value, name)
        io_names["outputs"][value.name] = i
    detail = ""
    if info:
        detail = " (ASCII)" if info.get("ascii") else f" ({info.get('long_size')}-byte longs)"
    result = b.build(doc=f"converted from Torch7 {model.class_name}{detail}")
    result.metadata_props[IO_KEY] = json.dumps(io_names, separators=(",", ":"))
    return result
