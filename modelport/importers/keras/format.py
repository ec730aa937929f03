"""Keras format declaration: HDF5 files written by Keras 2/3 and Keras 3 ``.keras`` archives.

Detection reads only the first bytes: the HDF5 signature plus one of the attribute names Keras
writes (``model_config``, ``keras_version``, ``layer_names``) somewhere in the file's head, or a
zip archive whose directory names ``config.json``. No HDF5 library is imported here.
"""

from __future__ import annotations

import os
import zipfile

from modelport.importers.registry import FormatSpec

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_KERAS_ATTRS = (b"model_config", b"keras_version", b"layer_names", b"weight_names")


def _h5_has_keras_attrs(path: str) -> bool:
    # Attribute names live in object headers, usually within the first few KiB but not always.
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return False
    return any(a in data for a in _KERAS_ATTRS)


def detect(path: str, head: bytes) -> int:
    lower = path.lower()
    if head.startswith(HDF5_MAGIC) or head[512:520] == HDF5_MAGIC:
        if any(a in head for a in _KERAS_ATTRS) or _h5_has_keras_attrs(path):
            return 90
        return 40 if lower.endswith((".h5", ".hdf5", ".keras")) else 0
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
        except (OSError, zipfile.BadZipFile):
            return 0
        if "config.json" in names and ("model.weights.h5" in names or lower.endswith(".keras")):
            return 90
        return 0
    if lower.endswith(".json") and head.lstrip().startswith(b"{") and b"class_name" in head:
        # An architecture written by model.to_json(); weights come with --weights.
        if b"keras_version" in head or b'"Functional"' in head or b'"Sequential"' in head:
            return 70
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json")) and \
            os.path.isfile(os.path.join(path, "model.weights.h5")):
        return 80
    return 0


FORMAT = FormatSpec(
    name="keras",
    description="Keras model",
    extensions=(".h5", ".hdf5", ".keras"),
    detection="HDF5 file with Keras attributes (model_config/keras_version), a zip with "
    "config.json and model.weights.h5 (.keras), or a to_json() architecture (+ --weights)",
    detect=detect,
    load="modelport.importers.keras.load:load",
    reference="modelport.convert.runners.keras:reference",
    reference_name="Keras",
    reference_modules=(("keras", "keras"),),
    load_modules=(("h5py", "core"),),
    code_check="modelport.importers.keras.safety:check",
    options=frozenset({"weights", "trust_code", "nchw_inputs", "input_dtypes"}),
)
