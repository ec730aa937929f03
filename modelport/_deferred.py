"""Deferred imports of modules that a conversion rarely touches.

onnx_ir imports SymPy when it is imported (for symbolic dimension arithmetic, which a
conversion almost never performs): about 0.4 s of every run, a fifth of converting a
ResNet-50. :func:`defer` puts a stand-in module into ``sys.modules``; the first time any
attribute of the stand-in is read, the real module is imported and takes its place, so code
that does use SymPy gets it, just later.

The stand-in carries the real module's ``__spec__``, so an ``import sympy`` statement finds it
without loading anything (``importlib.util.LazyLoader`` cannot be used: it loads on that very
look-up). :func:`defer_package_init` does the same for a package's ``__init__`` alone
(onnxscript's), leaving its submodules importable. Only the command line calls these
(:func:`defer_rarely_used`): ``import modelport`` changes nothing in ``sys.modules``. Set
``MODELPORT_EAGER_IMPORTS=1`` to switch this off.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import pkgutil
import sys
import types


class _Deferred(types.ModuleType):
    """Stands in ``sys.modules`` for a module that has not been imported yet."""

    def __getattr__(self, attr: str):
        # Only called for names the stand-in lacks: anything but its spec loads the module.
        return getattr(_load(self), attr)


class _DeferredInit(_Deferred):
    """Stands in ``sys.modules`` for a package whose ``__init__`` has not run: its submodules
    import as usual (``from pkg import sub`` included); any other attribute runs it."""

    def __getattr__(self, attr: str):
        if attr in vars(self).get("_submodules", ()):
            # A submodule not imported yet (``import onnxscript`` then ``onnxscript.onnx_types``,
            # which the real ``__init__`` would have imported): import it alone.
            return importlib.import_module(f"{self.__spec__.name}.{attr}")
        return getattr(_load(self), attr)


def _load(stand_in: _Deferred) -> types.ModuleType:
    name = stand_in.__spec__.name
    parent = name.rpartition(".")[0]
    if parent and isinstance(sys.modules.get(parent), _Deferred):
        # The package first: importing it may import this module itself.
        _load(sys.modules[parent])
    if sys.modules.get(name) is stand_in:
        del sys.modules[name]
    real = importlib.import_module(name)
    # Submodules imported while the stand-in was the package were bound on the stand-in; the
    # import system binds a submodule on its package only when it first loads it.
    prefix = name + "."
    for full, module in list(sys.modules.items()):
        child = full[len(prefix):]
        if full.startswith(prefix) and "." not in child and module is not None and not hasattr(
                real, child):
            setattr(real, child, module)
    # Names bound to the stand-in (``import sympy`` at module level elsewhere) keep working,
    # at the speed of a plain module attribute, once its namespace is the real one's.
    vars(stand_in).update(vars(real))
    return real


def defer(name: str) -> bool:
    """Defer importing ``name`` (``package.module`` allowed: the package is not imported).

    Returns False, changing nothing, when the module is already imported or cannot be found.
    """
    if name in sys.modules or os.environ.get("MODELPORT_EAGER_IMPORTS"):
        return False
    parent, _, _ = name.rpartition(".")
    try:
        if parent:
            parent_spec = importlib.util.find_spec(parent) if parent not in sys.modules else \
                sys.modules[parent].__spec__
            if parent_spec is None or not parent_spec.submodule_search_locations:
                return False
            spec = importlib.machinery.PathFinder.find_spec(
                name, list(parent_spec.submodule_search_locations))
        else:
            spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    stand_in = _Deferred(name)
    stand_in.__spec__ = spec
    stand_in.__loader__ = spec.loader
    stand_in.__package__ = name if spec.submodule_search_locations else parent
    sys.modules[name] = stand_in
    if parent in sys.modules:
        # ``import a.b`` binds ``a`` and code then reads ``a.b``: the attribute the import
        # system would have set on the package.
        setattr(sys.modules[parent], name.rpartition(".")[2], stand_in)
    return True


def defer_package_init(name: str) -> bool:
    """Let ``name``'s submodules be imported without running the package's ``__init__``.

    onnxscript's ``__init__`` imports its script front end and every opset module (about a
    third of its import time) to export names a conversion never reads; the optimizer and
    rewriter modules the passes use are submodules that do not need them. The stand-in has
    the package's ``__path__``, so ``import onnxscript.optimizer`` finds the submodule; the
    first read of any other attribute (``onnxscript.script``) runs the real ``__init__``.

    Returns False, changing nothing, when the package is already imported or not found.
    """
    if name in sys.modules or os.environ.get("MODELPORT_EAGER_IMPORTS"):
        return False
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    stand_in = _DeferredInit(name)
    stand_in.__spec__ = spec
    stand_in.__loader__ = spec.loader
    stand_in.__package__ = name
    stand_in.__file__ = spec.origin
    stand_in.__path__ = list(spec.submodule_search_locations)
    stand_in._submodules = frozenset(info.name for info in pkgutil.iter_modules(stand_in.__path__))
    sys.modules[name] = stand_in
    return True


def is_loaded(name: str) -> bool:
    """True once ``name`` is really imported (not just deferred)."""
    return name in sys.modules and not isinstance(sys.modules[name], _Deferred)


def defer_reference_evaluator() -> None:
    """onnxscript's constant folder imports ONNX's reference evaluator (about 0.1 s) but
    only calls it for a node it can fold; call this before importing onnxscript."""
    if "onnx.reference" in sys.modules:
        return
    import onnx  # noqa: F401  (the package itself is needed anyway)

    if defer("onnx.reference"):
        defer("onnx.reference.ops")


def defer_rarely_used() -> None:
    """What the command line defers before it imports anything else: SymPy, the onnx_ir
    module that builds a table of SymPy functions when it is imported, and the body of
    onnxscript's ``__init__`` (:func:`defer_package_init`)."""
    if "onnx_ir" in sys.modules:
        return
    defer("sympy")
    defer("onnx_ir._symbolic_shapes")
    defer_package_init("onnxscript")
