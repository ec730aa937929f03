"""Reading a Keras file: the JSON model config and where each layer's weights are.

Three containers are read:

* legacy HDF5 (Keras 2 ``model.save("m.h5")``, and Keras 3 which still writes it): the root
  attribute ``model_config`` holds the JSON, ``model_weights/<layer>`` groups list their
  datasets in the attribute ``weight_names`` (in the layer's ``weights`` order);
* weights-only HDF5 (``save_weights``) plus a JSON architecture file (``to_json()``): the same
  groups at the root of the file;
* Keras 3 ``.keras`` zip archives: ``config.json`` and ``model.weights.h5``, whose groups are
  named after the layer *class* (``layers/conv2d_1/vars/0``), numbered in ``model.layers`` order.

Configs of Keras 2 and Keras 3 are normalised into :class:`Node` calls here, so translators
never see the difference between ``inbound_nodes`` formats.
"""

from __future__ import annotations

import dataclasses
import io
import json
import mmap
import os
import re
import zipfile
import zlib
from typing import Any

from modelport.errors import InvalidModelError, first_line
from modelport.importers.hdf5_scan import check_global_heaps, check_hdf5_file

MODEL_CLASSES = {"Functional", "Model", "Sequential"}


@dataclasses.dataclass
class Ref:
    """A tensor produced by call ``node`` of layer ``layer`` (its output ``index``)."""

    layer: str
    node: int
    index: int


@dataclasses.dataclass
class Call:
    """One call of a layer: positional tensor refs (flattened), keyword tensors, constants."""

    args: list[Any]  # Ref or constant values, nested structure flattened
    kwargs: dict[str, Any]
    nested: list[Any] | None = None  # the positional arguments as given (Keras 3)


@dataclasses.dataclass
class LayerSpec:
    class_name: str
    name: str
    config: dict
    module: str | None
    calls: list[Call]
    raw: dict


def _is_tensor3(x: Any) -> bool:
    return isinstance(x, dict) and x.get("class_name") == "__keras_tensor__"


def _parse_value(x: Any) -> Any:
    """Keras 3 argument values: tensors become Refs, lists stay lists."""
    if _is_tensor3(x):
        h = x["config"]["keras_history"]
        return Ref(h[0], int(h[1]), int(h[2]))
    if isinstance(x, list):
        return [_parse_value(v) for v in x]
    if isinstance(x, dict) and "class_name" not in x:
        return {k: _parse_value(v) for k, v in x.items()}
    return x


def _flatten(x: Any) -> list:
    if isinstance(x, list):
        out = []
        for v in x:
            out.extend(_flatten(v))
        return out
    return [x]


def _parse_calls(inbound: Any) -> list[Call]:
    calls = []
    for node in inbound or []:
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            nested = _parse_value(node.get("args", []))
            kwargs = {k: _parse_value(v) for k, v in (node.get("kwargs") or {}).items()}
            calls.append(Call(_flatten(nested), kwargs, nested))
        else:  # Keras 2: [[layer, node, tensor, kwargs], ...]
            args: list[Any] = []
            kwargs: dict[str, Any] = {}
            if node and isinstance(node[0], str):  # TFOpLambda: one bare entry
                node = [node]
            for entry in node:
                if isinstance(entry, dict):  # a bare kwargs dict (rare)
                    kwargs.update(entry)
                    continue
                if entry[0] == "_CONSTANT_VALUE" and entry[1] == -1:
                    # A constant first argument of a TFOpLambda (the 2.0 of ``2.0 * x``).
                    args.append(entry[2])
                else:
                    args.append(Ref(entry[0], int(entry[1]), int(entry[2])))
                if len(entry) > 3 and isinstance(entry[3], dict):
                    for k, v in entry[3].items():
                        kwargs[k] = _keras2_kwarg(v)
            calls.append(Call(args, kwargs))
    return calls


def _keras2_kwarg(v: Any) -> Any:
    if (isinstance(v, list) and len(v) in (3, 4) and isinstance(v[0], str)
            and isinstance(v[1], int) and isinstance(v[2], int)):
        return Ref(v[0], v[1], v[2])
    if isinstance(v, list):
        return [_keras2_kwarg(x) for x in v]
    return v


def _refs(x: Any) -> list[Ref]:
    if isinstance(x, Ref):
        return [x]
    if isinstance(x, list):
        return [r for v in x for r in _refs(v)]
    if isinstance(x, dict):
        return [r for v in x.values() for r in _refs(v)]
    return []


def _io_refs(x: Any) -> list[Ref]:
    if not x:
        return []
    if isinstance(x, dict):  # Keras 3 may key inputs/outputs by name
        x = list(x.values())
    if isinstance(x[0], str):
        return [Ref(x[0], int(x[1]), int(x[2]))]
    return [r for v in x for r in _io_refs(v)]


@dataclasses.dataclass
class ModelSpec:
    class_name: str
    name: str
    layers: list[LayerSpec]
    inputs: list[Ref]
    outputs: list[Ref]
    raw: dict


def parse_model(cfg: dict) -> ModelSpec:
    """A Sequential or Functional model config (``{"class_name", "config"}``).

    This is the parser of the JSON structure: a config of the wrong shape (a layer without
    ``class_name``, a node that is not a list, a string where a dict belongs) is a malformed
    file, reported as InvalidModelError."""
    try:
        return _parse_model(cfg)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidModelError(
            f"the model config is malformed ({type(exc).__name__}: {exc})") from exc


def _parse_model(cfg: dict) -> ModelSpec:
    if not isinstance(cfg, dict):
        raise TypeError(f"a model config is a {type(cfg).__name__}, not an object")
    cls = cfg.get("class_name")
    conf = cfg.get("config") or {}
    if cls == "Sequential":
        return _parse_sequential(conf, cfg)
    if cls in ("Functional", "Model") or "layers" in conf:
        layers = []
        for lc in conf.get("layers", []):
            lconf = lc.get("config") or {}
            name = lc.get("name") or lconf.get("name")
            layers.append(LayerSpec(lc["class_name"], name, lconf, lc.get("module"),
                                    _parse_calls(lc.get("inbound_nodes")), lc))
        return ModelSpec(cls or "Functional", conf.get("name", "model"), layers,
                         _io_refs(conf.get("input_layers")), _io_refs(conf.get("output_layers")),
                         cfg)
    raise InvalidModelError(f"the model config has class {cls!r}, not a Sequential or "
                            "Functional model (subclassed models keep their code in Python and "
                            "cannot be read without it)")


def _parse_sequential(conf: dict, raw: dict) -> ModelSpec:
    entries = conf["layers"] if isinstance(conf, dict) else conf
    layers: list[LayerSpec] = []
    first = entries[0] if entries else None
    if first is not None and first["class_name"] != "InputLayer":
        fc = first.get("config") or {}
        shape = fc.get("batch_input_shape") or fc.get("batch_shape")
        if shape is None and isinstance(conf, dict):
            shape = conf.get("build_input_shape")
            if isinstance(shape, dict):
                shape = None
        if shape is None:
            raise InvalidModelError("the Sequential model has no input shape (it was never built)")
        input_cfg = {"batch_shape": list(shape), "dtype": fc.get("dtype") if isinstance(
            fc.get("dtype"), str) else "float32", "name": f"{fc.get('name', 'input')}_input"}
        layers.append(LayerSpec("InputLayer", input_cfg["name"], input_cfg, None, [], {}))
    prev: str | None = None
    for lc in entries:
        lconf = lc.get("config") or {}
        name = lc.get("name") or lconf.get("name")
        calls = [] if lc["class_name"] == "InputLayer" else [Call([Ref(prev, 0, 0)], {})]
        if lc["class_name"] != "InputLayer" and prev is None:
            calls = [Call([Ref(layers[0].name, 0, 0)], {})]
        layers.append(LayerSpec(lc["class_name"], name, lconf, lc.get("module"), calls, lc))
        prev = name
    return ModelSpec("Sequential", conf.get("name", "sequential") if isinstance(conf, dict) else
                     "sequential", layers, [Ref(layers[0].name, 0, 0)], [Ref(prev, 0, 0)], raw)


def snake_case(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# -- weights -------------------------------------------------------------------------------------

# Sub-objects whose weights come in a fixed order in ``layer.weights`` (.keras archives name
# their groups by attribute, which h5py lists alphabetically).
_CHILD_ORDER = {
    "MultiHeadAttention": ["query_dense", "key_dense", "value_dense", "output_dense"],
    "Bidirectional": ["forward_layer", "backward_layer"],
}


_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)
# A compressed dataset may expand this much over its stored bytes (zeros compress ~1000x).
MAX_DATASET_EXPANSION = 2000


class Dataset:
    """A weight dataset of a Keras HDF5 file, checked before anything is allocated.

    Its declared size must fit what the file stores (a header claiming 10^12 elements is a
    malformed file, not an allocation), and a read that h5py fails (a corrupt chunk, a
    truncated file) is reported as InvalidModelError naming the file and the dataset.

    ``ds`` is an h5py Dataset or its low-level ``DatasetID``. With ``fd`` (the descriptor
    HDF5's default driver reads the file through), a whole read of a plain dataset (stored
    in one piece, no filters, a numeric type) is one ``preadv`` into a new array: what
    HDF5 would do, without its per-read set-up, which costs more than the copy for the
    hundreds of small weights of a CNN.
    """

    def __init__(self, ds: Any, path: str, fd: int | None = None,
                 name: str | None = None) -> None:
        import h5py

        self.path = path
        self._fd = fd
        self._offset: int | None = None
        try:
            dsid = ds if isinstance(ds, h5py.h5d.DatasetID) else ds.id
            self._id = dsid
            self.name = name if name is not None else \
                (h5py.h5i.get_name(dsid) or b"").decode(errors="replace")
            self.shape = tuple(int(d) for d in dsid.shape)
            self.dtype = dsid.dtype
            stored = dsid.get_storage_size()
            dcpl = dsid.get_create_plist()
            filters = dcpl.get_nfilters() > 0
            plain = fd is not None and not filters and self.dtype.kind in "fiub" and \
                dcpl.get_layout() == h5py.h5d.CONTIGUOUS
            offset = dsid.get_offset() if plain else None
        except _H5_ERRORS as exc:
            raise self._error(exc) from exc
        count = 1
        for d in self.shape:
            count *= d
        nbytes = count * self.dtype.itemsize
        limit = stored * MAX_DATASET_EXPANSION if filters else stored
        if nbytes > limit and count > 0:
            raise InvalidModelError(
                f"weight {self.name!r} declares shape {list(self.shape)} ({nbytes} bytes) but "
                f"the file stores {stored} bytes for it (truncated or corrupt?)", path=path)
        if offset is not None and stored == nbytes:
            self._offset = offset
        self.ndim = len(self.shape)
        self.size = count

    def _error(self, exc: BaseException) -> InvalidModelError:
        text = first_line(exc)
        where = getattr(self, "name", None) or "a weight"
        return InvalidModelError(f"cannot read {where} (truncated or corrupt?): {text}",
                                 path=self.path)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple) and not key and self._offset is not None:
            return self._read_whole()
        try:
            import h5py

            return h5py.Dataset(self._id)[key]
        except _H5_ERRORS as exc:
            raise self._error(exc) from exc

    def _read_whole(self) -> Any:
        import numpy as np

        if not self._id.valid:  # the file was closed: its descriptor may be another file's now
            raise self._error(ValueError("the HDF5 file holding it was closed"))
        out = np.empty(self.shape, self.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        done = 0
        try:
            while done < len(view):
                got = os.preadv(self._fd, [view[done:]], self._offset + done)
                if got <= 0:
                    raise OSError(f"the file ends {len(view) - done} bytes into the data")
                done += got
        except OSError as exc:
            raise self._error(exc) from exc
        return out

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        import numpy as np

        arr = self[()]
        return np.asarray(arr, dtype=dtype) if dtype is not None else np.asarray(arr)


def _raw_fd(root: Any) -> int | None:
    """The OS descriptor HDF5 reads ``root``'s file through, where it is a plain file (the
    default ``sec2`` driver; not a file object inside a .keras archive) and this platform
    has ``os.preadv``; None otherwise."""
    if not hasattr(os, "preadv"):
        return None
    try:
        f = root.file
        return int(f.id.get_vfd_handle()) if f.driver == "sec2" else None
    except _H5_ERRORS:
        return None


def _group_error(exc: BaseException, path: str) -> InvalidModelError:
    text = first_line(exc)
    return InvalidModelError(f"cannot read the weights (truncated or corrupt?): {text}",
                             path=path)


class LegacyWeights:
    """Weights in ``model_weights/<layer>`` groups (or at the root for save_weights files)."""

    def __init__(self, root: Any, file: str = "") -> None:
        self.root = root
        self.file = file
        self.fd = _raw_fd(root)

    def for_layer(self, path: tuple[str, ...], spec: LayerSpec) -> list:
        try:
            return self._for_layer(path, spec)
        except _H5_ERRORS as exc:
            raise _group_error(exc, self.file) from exc

    def _for_layer(self, path: tuple[str, ...], spec: LayerSpec) -> list:
        import h5py

        group = self.root.get(path[0]) if path[0] in self.root else None
        if group is None:
            return []
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in group.attrs.get("weight_names", [])]
        if len(path) > 1:  # a layer inside a nested model: its names start with its own name
            inner = path[-1]
            names = [n for n in names if n.split("/")[0] == inner or f"/{inner}/" in f"/{n}"]
        # Opened through the low-level API: a fifth of the cost of ``group[name]``.
        where = group.name
        return [Dataset(h5py.h5d.open(group.id, n.encode()), self.file, self.fd,
                        f"{where}/{n}") for n in names]


class ArchiveWeights:
    """Weights in a Keras 3 ``model.weights.h5`` (``layers/<class_snake>[_i]/vars/<k>``)."""

    def __init__(self, root: Any, file: str = "") -> None:
        self.root = root
        self.file = file
        self.fd = _raw_fd(root)
        self.paths: dict[tuple[str, ...], str] = {}

    def assign(self, model: ModelSpec, prefix: tuple[str, ...] = (), base: str = "") -> None:
        used: dict[str, int] = {}
        for spec in model.layers:
            if spec.class_name == "InputLayer" and model.class_name == "Sequential" and \
                    not spec.raw:
                continue  # synthesised by parse_model, not a real layer
            key = snake_case(spec.class_name)
            if key in used:
                used[key] += 1
                key = f"{key}_{used[key]}"
            else:
                used[key] = 0
            group = f"{base}layers/{key}"
            self.paths[(*prefix, spec.name)] = group
            if spec.class_name in MODEL_CLASSES:
                self.assign(parse_model(spec.raw), (*prefix, spec.name), group + "/")

    def for_layer(self, path: tuple[str, ...], spec: LayerSpec) -> list:
        try:
            group = self.paths.get(path)
            if group is None or group not in self.root:
                return []
            return [Dataset(d, self.file, self.fd) for d in self._collect(self.root[group],
                                                                 spec.class_name)]
        except _H5_ERRORS as exc:
            raise _group_error(exc, self.file) from exc

    def _collect(self, group: Any, class_name: str) -> list:
        out = []
        if "vars" in group:
            v = group["vars"]
            out.extend(v[k] for k in sorted(v.keys(), key=int))
        children = [k for k in group.keys() if k != "vars"]
        order = _CHILD_ORDER.get(class_name)
        if order:
            children = [c for c in order if c in children] + \
                       sorted(c for c in children if c not in order)
        else:
            children = sorted(children)
        for c in children:
            sub = group[c]
            if hasattr(sub, "keys"):
                out.extend(self._collect(sub, ""))
        return out


@dataclasses.dataclass
class KerasFile:
    config: dict
    keras_version: str
    weights: Any  # LegacyWeights | ArchiveWeights | None
    handles: list  # open files to close
    backend: str | None = None  # the ``backend`` attribute Keras 2 records (theano, tensorflow)


def open_keras(path: str, weights_path: str | None) -> KerasFile:

    handles: list = []
    try:
        if zipfile.is_zipfile(path):
            return _open_archive(path, handles)
        if os.path.isdir(path):
            with open(os.path.join(path, "config.json")) as f:
                config = json.load(f)
            h = _open_h5(os.path.join(path, "model.weights.h5"))
            handles.append(h)
            aw = ArchiveWeights(h, os.path.join(path, "model.weights.h5"))
            aw.assign(parse_model(config))
            return KerasFile(config, "3", aw, handles)
        if path.lower().endswith(".json"):
            with open(path) as f:
                config = json.load(f)
            weights = None
            backend = config.get("backend")
            if weights_path:
                h = _open_h5(weights_path)
                handles.append(h)
                weights = _weights_only(h, weights_path)
                backend = _attr(h, "backend") or backend
            version = str(config.get("keras_version") or
                          (_attr(handles[-1], "keras_version") if weights_path else None) or "3")
            return KerasFile(config, version, weights, handles, backend)
        h = _open_h5(path)
        handles.append(h)
        version = _attr(h, "keras_version") or "2"
        raw = _attr(h, "model_config")
        if raw is None:
            if "layer_names" in h.attrs or "layers" in h:
                raise InvalidModelError(
                    "holds weights only (no model_config); pass the architecture JSON as the "
                    "model and this file with --weights", path=path)
            raise InvalidModelError("is an HDF5 file without a Keras model_config", path=path)
        config = json.loads(raw)
        backend = _attr(h, "backend")
        if backend is None and "model_weights" in h:
            backend = _attr(h["model_weights"], "backend")
        if weights_path:
            h2 = _open_h5(weights_path)
            handles.append(h2)
            weights = _weights_only(h2, weights_path)
        else:
            weights = LegacyWeights(h["model_weights"], path) if "model_weights" in h else None
        return KerasFile(config, version, weights, handles, backend)
    except InvalidModelError:
        for h in handles:
            h.close()
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError,
            EOFError, NotImplementedError, zipfile.BadZipFile) as exc:
        # What json, zipfile and h5py raise on malformed content (UnicodeDecodeError and
        # JSONDecodeError are ValueErrors; HDF5 reports corrupt metadata as RuntimeError).
        for h in handles:
            h.close()
        text = first_line(exc)
        raise InvalidModelError(f"cannot be read as a Keras file (truncated or corrupt?): "
                                f"{text}", path=path) from exc


def _weights_only(h: Any, path: str) -> Any:
    if "layers" in h and "layer_names" not in h.attrs:
        return ("archive", h)  # resolved once the config is parsed
    return LegacyWeights(h["model_weights"] if "model_weights" in h else h, path)


def _open_h5(source: str) -> Any:
    """h5py.File on a path, after the safety scans of :mod:`modelport.importers.hdf5_scan`
    (structures libhdf5 hangs or crashes on)."""
    import h5py

    with open(source, "rb") as f:
        check_hdf5_file(f, source)
    return h5py.File(source, "r")


def _attr(h: Any, name: str) -> str | None:
    v = h.attrs.get(name)
    if v is None:
        return None
    return v.decode() if isinstance(v, bytes) else str(v)


# A member of a .keras archive may expand at most this much (weights compress ~1.1x, JSON
# ~10x; a zip bomb 1000x): past it the archive is refused without inflating the member.
MAX_ZIP_RATIO = 200
_RATIO_FLOOR = 1 << 20  # members smaller than this are never refused for their ratio


def _member(z: zipfile.ZipFile, name: str, path: str) -> zipfile.ZipInfo:
    info = z.getinfo(name)
    if info.file_size > _RATIO_FLOOR and info.file_size > MAX_ZIP_RATIO * max(
            1, info.compress_size):
        raise InvalidModelError(
            f"member {name!r} would expand {info.compress_size} bytes to {info.file_size} "
            f"(over {MAX_ZIP_RATIO}x: a zip bomb?)", path=path)
    return info


def _read_member(z: zipfile.ZipFile, name: str, path: str) -> bytes:
    _member(z, name, path)
    return z.read(name)  # zipfile stops at the declared size and checks the CRC


def _open_archive(path: str, handles: list) -> KerasFile:
    import h5py

    z = zipfile.ZipFile(path)
    handles.append(z)
    config = json.loads(_read_member(z, "config.json", path))
    meta = json.loads(_read_member(z, "metadata.json", path)) \
        if "metadata.json" in z.namelist() else {}
    info = _member(z, "model.weights.h5", path)
    if info.compress_type == zipfile.ZIP_STORED:
        # Uncompressed member: read it in place through an offset view (no copy in memory),
        # after checking its CRC as zipfile would (a flipped weight byte is not a valid file).
        f = open(path, "rb")
        handles.append(f)
        f.seek(info.header_offset)
        header = f.read(30)
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            raise InvalidModelError("the zip entry of model.weights.h5 is corrupt", path=path)
        name_len = int.from_bytes(header[26:28], "little")
        extra_len = int.from_bytes(header[28:30], "little")
        start = info.header_offset + 30 + name_len + extra_len
        size = os.fstat(f.fileno()).st_size
        if start + info.file_size > size:
            raise InvalidModelError("model.weights.h5 runs past the end of the archive "
                                    "(truncated?)", path=path)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as region:
            crc = 0
            for pos in range(start, start + info.file_size, 1 << 24):
                crc = zlib.crc32(region[pos:min(pos + (1 << 24), start + info.file_size)], crc)
            if crc != info.CRC:
                raise InvalidModelError(
                    "model.weights.h5 fails its zip CRC check (the weights are corrupt)",
                    path=path)
            check_global_heaps(region, path, start, start + info.file_size)
        h = h5py.File(_Window(f, start, info.file_size), "r")
    else:
        data = _read_member(z, "model.weights.h5", path)
        check_global_heaps(data, path)
        h = h5py.File(io.BytesIO(data), "r")
    handles.append(h)
    aw = ArchiveWeights(h, path)
    aw.assign(parse_model(config))
    return KerasFile(config, str(meta.get("keras_version", "3")), aw, handles)


class _Window(io.RawIOBase):
    """A read-only file object over ``size`` bytes of ``f`` starting at ``start``."""

    def __init__(self, f: Any, start: int, size: int) -> None:
        self.f, self.start, self.size, self.pos = f, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b: Any) -> int:
        n = max(0, min(len(b), self.size - self.pos))
        self.f.seek(self.start + self.pos)
        data = self.f.read(n)
        b[: len(data)] = data
        self.pos += len(data)
        return len(data)
