"""Translation tables: small functions registered by source op/layer name.

Each importer makes one table and decorates its translators::

    keras_layer = OpTable("Keras layer")

    @keras_layer("Conv2D", "Conv2DTranspose")
    def conv(ctx, layer, inputs): ...

An unknown op never stops at the first one: :meth:`OpTable.check` collects every name the
table lacks and raises one :class:`UnsupportedOpsError` listing them all. Users can register
translations for custom layers the same way (see docs/extending.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from modelport.errors import UnsupportedOpsError

F = TypeVar("F", bound=Callable[..., Any])


class OpTable:
    """A table of translators keyed by source op or layer name (``kind`` names the table in
    messages, e.g. "Keras layer").

    Call it as a decorator with one or more names (``replace=True`` overrides an existing
    translation; without it registering a name twice is a ``ValueError``)::

        @caffe_layer("MyScale", "MyScale2")
        def my_scale(ctx, layer, inputs): ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._table: dict[str, Callable[..., Any]] = {}

    def __call__(self, *names: str, replace: bool = False) -> Callable[[F], F]:
        def decorate(fn: F) -> F:
            for name in names:
                if name in self._table and not replace:
                    raise ValueError(f"{self.kind} {name!r} is already registered")
                self._table[name] = fn
            return fn

        return decorate

    def register(self, name: str, fn: Callable[..., Any], *, replace: bool = True) -> None:
        """Register ``fn`` for ``name`` without a decorator (replacing any translation)."""
        self(name, replace=replace)(fn)

    def get(self, name: str) -> Callable[..., Any] | None:
        """The translator for ``name``, or None."""
        return self._table.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._table

    def names(self) -> list[str]:
        """Every registered name, sorted (what ``modelport formats`` counts as supported)."""
        return sorted(self._table)

    def check(
        self,
        used: Iterable[tuple[str, str]],
        *,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        """Raise if any (op name, layer name) pair in ``used`` has no translation."""
        missing: dict[str, list[str]] = {}
        for op, layer in used:
            if op not in self._table:
                missing.setdefault(op, []).append(layer)
        if missing:
            raise UnsupportedOpsError(missing, path=path, kind=self.kind, hint=hint)


_loaded_packages: set[str] = set()


def load_translators(package: str) -> None:
    """Import every module of the translator package ``package`` once (modules whose names
    start with ``_`` are helpers and are left to be imported by those that use them).

    The one way every importer finds its translators: a module dropped into the package
    registers its ops on import, with no list to update.
    """
    if package in _loaded_packages:
        return
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
    _loaded_packages.add(package)
