"""The format registry: which importers exist, how a file's format is detected, what each needs.

Each importer package ``modelport.importers.<name>`` has a small ``format`` module defining
``FORMAT = FormatSpec(...)``. It must import nothing heavy: detection runs on every command.
The importer itself (``load``) and the verification reference (``reference``) are given as
``"module:function"`` strings and imported only when used.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelport.errors import InvalidModelError, ModelportError, UnknownFormatError

# Packages that may define a format, in the order `modelport formats` lists them.
FORMAT_PACKAGES = ("onnx", "keras", "tensorflow", "caffe", "mxnet", "pytorch", "torch7",
                   "recognised")
HEAD_BYTES = 4096


@dataclasses.dataclass
class LoadOptions:
    """What a user can tell an importer (CLI options map onto these one to one)."""

    input_shapes: dict[str, list[int | str]] = dataclasses.field(default_factory=dict)
    input_dtypes: dict[str, str] = dataclasses.field(default_factory=dict)
    outputs: list[str] | None = None
    weights: str | None = None  # companion weight file (.caffemodel, .params, state_dict)
    trust_code: bool = False
    random_weights: bool = False
    nchw_inputs: bool = False
    dynamic: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class FormatSpec:
    """One importable (or only recognised) format, as a ``format`` module declares it.

    The "format registry" section of the Extending guide says what each field
    means; ``load``, ``reference`` and ``code_check`` are ``"module:function"`` strings,
    imported only when used.
    """

    name: str
    description: str
    extensions: tuple[str, ...]
    detection: str  # one line: how the content is recognised
    detect: Callable[[str, bytes], int]  # (path, first bytes) -> score, 0 = not this format
    load: str  # "module:function" taking (path, LoadOptions) -> ir.Model
    reference: str | None = None  # "module:function" (path, LoadOptions, device=) -> runner
    reference_name: str = ""  # what verification compares against
    reference_modules: tuple[tuple[str, str], ...] = ()  # (python module, pip extra) it needs
    load_modules: tuple[tuple[str, str], ...] = ()  # modules conversion itself needs
    # "module:function" (path, LoadOptions, *, run: bool) -> None: raises UnsafeModelError when
    # reading the file (run=False: our importer; run=True: the source framework, for
    # verification) would execute code stored in it and options.trust_code is not set. The
    # pipeline calls it before anything else opens the file (see pipeline.check_code).
    code_check: str | None = None
    # Recognised but not converted: what to do instead (non-empty for such formats).
    not_converted: str = ""
    # The LoadOptions a format honours beyond --input shapes and --output (which every format
    # takes), by field name (see OPTION_FLAGS). None: not declared, nothing is checked.
    options: frozenset[str] | None = None

    def refuse(self, path: str) -> ModelportError:
        """The one-line answer for a recognised format that modelport does not convert."""
        return NotConvertedError(
            f"is a {self.description}: modelport recognises this format but does not convert "
            f"it; {self.not_converted}", path=path)

    def loader(self) -> Callable[..., Any]:
        return _resolve(self.load)

    def reference_factory(self) -> Callable[..., Any] | None:
        return _resolve(self.reference) if self.reference else None

    def check_code(self, path: str, options: LoadOptions, *, run: bool) -> None:
        if self.code_check:
            _resolve(self.code_check)(path, options, run=run)

    def missing_for_reference(self) -> list[tuple[str, str]]:
        return [(m, e) for m, e in self.reference_modules if not _installed(m)]

    def missing_for_load(self) -> list[tuple[str, str]]:
        return [(m, e) for m, e in self.load_modules if not _installed(m)]


class NotConvertedError(ModelportError):
    """The file is in a format modelport recognises but does not convert (exit 2)."""


# LoadOptions fields a format may or may not honour -> how a CLI user asks for them.
OPTION_FLAGS = {
    "weights": "--weights",
    "trust_code": "--trust-code",
    "random_weights": "--random-weights",
    "nchw_inputs": "--nchw-inputs",
    "dynamic": "--dynamic",
    "input_dtypes": "a dtype in --input NAME:DIMS:DTYPE",
}
_WHY = {
    "weights": "it holds its own weights",
    "trust_code": "converting it never runs code",
    "random_weights": "it does not fill in missing weights",
    "nchw_inputs": "its inputs are not channels-last",
    "dynamic": "it cannot make a dim symbolic on request",
    "input_dtypes": "its inputs' dtypes are fixed by the file",
}


def check_options(spec: FormatSpec, options: LoadOptions) -> None:
    """Refuse, in one line, every option given that ``spec``'s format does not honour.

    Called before any work and before any output is written."""
    if spec.options is None:
        return
    given = [field for field in OPTION_FLAGS if getattr(options, field)]
    refused = [field for field in given if field not in spec.options]
    if not refused:
        return
    from modelport.errors import UnsupportedOptionError

    parts = [f"{OPTION_FLAGS[f]} ({_WHY[f]})" for f in refused]
    article = "an" if spec.description[:1].lower() in "aeiou" else "a"
    raise UnsupportedOptionError(
        f"{article} {spec.description} does not take {'; '.join(parts)}: drop "
        f"{'it' if len(refused) == 1 else 'them'}")


def _resolve(target: str) -> Callable[..., Any]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


_FORMATS: dict[str, FormatSpec] | None = None


def formats() -> dict[str, FormatSpec]:
    """Every format modelport knows, by name, in the order ``modelport formats`` lists them."""
    global _FORMATS
    if _FORMATS is None:
        found: dict[str, FormatSpec] = {}
        for package in FORMAT_PACKAGES:
            name = f"modelport.importers.{package}.format"
            if importlib.util.find_spec(f"modelport.importers.{package}") is None:
                continue
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name == name:
                    continue
                raise
            for spec in getattr(module, "FORMATS", [getattr(module, "FORMAT", None)]):
                if spec is not None:
                    found[spec.name] = spec
        _FORMATS = found
    return _FORMATS


def get_format(name: str) -> FormatSpec:
    """The format called ``name`` (as ``--format`` takes it); UnknownFormatError if none."""
    try:
        return formats()[name]
    except KeyError:
        raise UnknownFormatError(
            f"unknown format {name!r}; known formats: {', '.join(formats())}"
        ) from None


def read_head(path: str) -> bytes:
    if not os.path.isfile(path):
        return b""
    with open(path, "rb") as f:
        return f.read(HEAD_BYTES)


def detect_format(path: str | os.PathLike) -> FormatSpec:
    """The format of ``path``, recognised by content first and by suffix second.

    Raises InvalidModelError for a missing or empty file and UnknownFormatError when no importer
    recognises the content.
    """
    path = os.fspath(path)
    exists = os.path.exists(path)
    head = read_head(path)
    scored = []
    for spec in formats().values():
        try:
            score = spec.detect(path, head)
        except Exception:  # a detector must never crash detection of other formats
            score = 0
        if score:
            scored.append((score, spec.name, spec))
    if scored:
        scored.sort(key=lambda t: (-t[0], t[1]))
        if scored[0][2].not_converted:
            raise scored[0][2].refuse(path)
        return scored[0][2]
    if not exists:
        raise InvalidModelError("no such file or directory", path=path)
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise InvalidModelError("file is empty", path=path)
    suffix = Path(path).suffix.lower()
    by_suffix = [s for s in formats().values()
                 if suffix and suffix in s.extensions and not s.not_converted]
    if by_suffix:
        raise InvalidModelError(
            f"has the suffix of a {by_suffix[0].description} file but its content is not one "
            "(truncated or corrupt?)",
            path=path,
        )
    raise UnknownFormatError(
        "not a model format modelport reads (see `modelport formats`)", path=path
    )
