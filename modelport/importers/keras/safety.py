"""The Keras code check: what in a model's config would run Python code when it is loaded.

modelport's importer reads the config as JSON and executes nothing in it. Keras itself is
another matter, and verification loads the file with it (tf_keras for Keras 2 files, which has
no safe mode at all for HDF5):

- a ``Lambda`` layer holds marshalled Python bytecode (or names a function of a loaded module)
  that Keras calls while it rebuilds the model — at any depth: inside ``TimeDistributed``,
  ``Bidirectional`` or a nested model;
- a Keras 3 ``__lambda__`` object is the same thing outside a Lambda layer;
- an object whose ``module`` lies outside Keras makes tf_keras ``import`` that module (its
  top-level code runs) and use whatever it finds there under ``class_name``;
- a ``class_name: "function"`` object may name any function of the Keras API
  (``keras.utils.get_file``...), which Keras calls; only activations, losses, metrics and ops
  are modelling functions;
- a Keras 2 ``TFOpLambda`` names a TensorFlow function that tf_keras calls while rebuilding the
  model (``io.write_file`` writes a file): only the tensor-math functions that the importer
  translates are accepted.

:func:`check` is the ``code_check`` of the Keras FormatSpec (see
``modelport.convert.pipeline.check_code``). With ``run=True`` (Keras loads the file, for
verification) everything above is refused. With ``run=False`` (our own importer) nothing in the
config is executed, and the importer's ``check_layers`` refuses Lambda layers that have no
registered translation, listing every other untranslatable layer in the same message.
``--trust-code`` lifts the check.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

from modelport.errors import InvalidModelError, UnsafeModelError, first_line

# Packages whose modules Keras may import by name from a config (its own).
KERAS_PACKAGES = ("keras", "tf_keras")
# Modules of modelling functions (activations, losses, metrics, ops, initialisers...).
FUNCTION_MODULE_PARTS = {"activations", "losses", "metrics", "ops", "initializers",
                         "regularizers", "constraints", "numpy", "nn", "math", "core"}


_MAX_CONFIG = 256 << 20  # a model config is kilobytes; refuse to inflate a zip bomb


def read_config(path: str) -> tuple[dict | None, str]:
    """(model config, keras version) without opening the weights; (None, "") if none."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "config.json" not in names:
                return None, ""
            if z.getinfo("config.json").file_size > _MAX_CONFIG:
                raise ValueError("config.json declares more than 256 MB")
            config = json.loads(z.read("config.json"))
            meta = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
        return config, str(meta.get("keras_version", "3"))
    if os.path.isdir(path):
        with open(os.path.join(path, "config.json")) as f:
            return json.load(f), "3"
    if path.lower().endswith(".json"):
        with open(path) as f:
            config = json.load(f)
        return config, str(config.get("keras_version", "3"))
    import h5py

    with h5py.File(path, "r") as h:
        raw = h.attrs.get("model_config")
        version = h.attrs.get("keras_version", "2")
    if raw is None:
        return None, ""
    raw = raw.decode() if isinstance(raw, bytes) else str(raw)
    version = version.decode() if isinstance(version, bytes) else str(version)
    return json.loads(raw), version


def findings(config: Any) -> list[str]:
    """One phrase per object of ``config`` that would run code (see the module docstring)."""
    found: list[str] = []
    lambdas: list[str] = []

    def walk(x: Any, trail: tuple[str, ...]) -> None:
        if isinstance(x, list):
            for item in x:
                walk(item, trail)
            return
        if not isinstance(x, dict):
            return
        cls = x.get("class_name")
        cfg = x.get("config") if isinstance(x.get("config"), dict) else {}
        name = cfg.get("name") if isinstance(cfg.get("name"), str) else None
        here = (*trail, name) if name and isinstance(cls, str) and x is not config else trail
        if cls == "Lambda":
            lambdas.append("/".join(here) or "?")
        elif isinstance(cls, str):
            module = x.get("module")
            if cls == "__lambda__":
                found.append(f"a serialized Python lambda in {'/'.join(trail) or 'the config'}")
            elif isinstance(module, str) and not _keras_module(module, cls):
                found.append(f"{cls!r} from module {module!r} (Keras would import it)")
            elif cls == "function" and isinstance(module, str) and module != "builtins" and \
                    not set(module.split(".")) & FUNCTION_MODULE_PARTS:
                fn = x.get("config") if isinstance(x.get("config"), str) else "?"
                found.append(f"function {module}.{fn} (not a modelling function)")
            elif cls == "TFOpLambda":
                fn = str(cfg.get("function"))
                if not _pure_tf_function(fn):
                    found.append(f"TFOpLambda {'/'.join(here)!r} calling tf.{fn}")
        for key, value in x.items():
            if key != "class_name":
                walk(value, here)

    walk(config, ())
    if lambdas:
        shown = ", ".join(repr(n) for n in lambdas[:5])
        more = f" and {len(lambdas) - 5} more" if len(lambdas) > 5 else ""
        found.insert(0, f"Lambda layer{'s' if len(lambdas) > 1 else ''} {shown}{more} "
                        "(marshalled Python code)")
    return found


def _keras_module(module: str, cls: str) -> bool:
    if module == "builtins":
        return cls == "function"  # Keras looks these names up among its own built-ins
    return module.split(".")[0] in KERAS_PACKAGES


def _pure_tf_function(fn: str) -> bool:
    """Whether the importer translates ``tf.<fn>`` (then it is tensor math, safe to call)."""
    from modelport.importers.keras.load import load_translators

    load_translators()
    from modelport.importers.keras.layers.tf_functions import supported

    return supported(fn)


def check(path: str, options: Any, *, run: bool) -> None:
    if not run or getattr(options, "trust_code", False):
        return
    try:
        config, _version = read_config(path)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, AttributeError, EOFError,
            zipfile.BadZipFile) as exc:  # what json, zipfile and h5py raise on malformed input
        text = first_line(exc)
        raise InvalidModelError(f"cannot read the Keras config ({text})", path=path) from exc
    if config is None:
        return
    problems = findings(config)
    if not problems:
        return
    raise UnsafeModelError(
        f"holds code: {'; '.join(problems)}; Keras would run it while loading the model for "
        "verification; pass --trust-code only if you trust the file's origin", path=path)
