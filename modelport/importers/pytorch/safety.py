"""The PyTorch code check, and the one way modelport opens a ``.pt2`` archive.

What can run code when a PyTorch file is opened, and what modelport does about it without
``--trust-code``:

- **TorchScript archives are programs.** ``torch.jit.load`` compiles the archive's ``code/`` and
  runs its ``__setstate__`` methods; running the module (which conversion must do, to trace it,
  and verification, to compare) runs the rest. TorchScript can write files
  (``torch.from_file(..., shared=True)``, ``aten::save``). :func:`check` refuses them.
- **Pickles** (``torch.save`` of a whole module, legacy or zip layout): only read with
  ``torch.load(weights_only=True)``, torch's restricted unpickler, which builds tensors and
  plain containers and refuses any other global (see ``sources._load_pickle``).
- **``.pt2`` archives** (``torch.export.save``): ``torch.export.load`` unpickles sample inputs
  and legacy weights with ``weights_only=False`` when the safe load fails, unpickles "opaque"
  constants with plain ``pickle.loads``, loads torchbind objects and AOTInductor shared
  libraries, and resolves every graph node's target by attribute path from ``torch`` (so
  ``torch.serialization.os.system`` is a valid target). :func:`check` reads the archive's
  member list and graph JSON first and refuses custom objects, AOTInductor code and node
  targets that are not operators; :func:`load_export` then loads it with every
  ``torch.load`` forced to ``weights_only=True`` and plain unpickling refused.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any

from modelport.errors import UnsafeModelError

TRUST_HINT = "pass --trust-code only if you trust the file's origin"
# Graph node targets a .pt2 may name: operators, and these pure Python functions.
_SAFE_OPERATOR = {"getitem", "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg",
                  "pos", "abs", "eq", "ne", "lt", "le", "gt", "ge", "and_", "or_", "xor",
                  "not_", "invert", "lshift", "rshift", "matmul"}
_SAFE_TORCH = {"torch.sym_int", "torch.sym_float", "torch.sym_ite", "torch.sym_max",
               "torch.sym_min", "torch.sym_not", "torch.sym_sqrt", "torch._sym_sqrt",
               "torch.sym_sum"}


def check(path: str, options: Any, *, run: bool) -> None:
    """The ``code_check`` of the PyTorch formats (``run`` does not matter: both run it)."""
    if getattr(options, "trust_code", False):
        return
    from modelport.importers.pytorch.format import archive_kind, is_entry_point
    from modelport.importers.registry import read_head

    if is_entry_point(path):
        return  # the user's own code, named by the user
    kind = archive_kind(path, read_head(path))
    if kind == "torchscript":
        raise UnsafeModelError(
            "is a TorchScript archive, which is a program: loading it runs its __setstate__ "
            "code and converting or verifying it runs the rest in the TorchScript interpreter "
            "(which can write files); " + TRUST_HINT + ", or save the model with "
            "torch.export.save (.pt2) instead", path=path)
    if kind == "export":
        problems = export_findings(path)
        if problems:
            raise UnsafeModelError(
                f"this torch.export archive holds code: {'; '.join(problems)}; " + TRUST_HINT,
                path=path)


def export_findings(path: str) -> list[str]:
    """What in a ``.pt2`` archive torch.export.load would execute (besides pickles)."""
    found: list[str] = []
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            graphs = [z.read(n) for n in names if "/models/" in n and n.endswith(".json")
                      or n.endswith("serialized_exported_program.json")]
    except (OSError, zipfile.BadZipFile, KeyError):
        return found  # the loader reports the broken archive
    inner = ["/".join(n.split("/")[1:]) for n in names]
    if any(n.startswith("data/aotinductor/") for n in inner):
        found.append("AOTInductor compiled code (a shared library)")
    objects = [n for n in inner if n.startswith("data/constants/") and
               n.split("/")[-1].startswith(("custom_obj_", "opaque_obj_"))]
    if objects:
        found.append(f"{len(objects)} pickled Python object constant(s)")
    bad: set[str] = set()
    for raw in graphs:
        try:
            graph = json.loads(raw)
        except ValueError:
            continue  # not JSON: the loader refuses it
        _targets(graph, bad)
    if bad:
        shown = ", ".join(sorted(bad)[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        found.append(f"graph nodes calling {shown}, which are not operators")
    return found


def _targets(x: Any, bad: set[str]) -> None:
    if isinstance(x, dict):
        for key, value in x.items():
            if key in ("target", "as_operator") and isinstance(value, str):
                if not _safe_target(value):
                    bad.add(value)
            else:
                _targets(value, bad)
    elif isinstance(x, list):
        for item in x:
            _targets(item, bad)


def _safe_target(target: str) -> bool:
    if target.startswith("torch.ops."):  # torch.ops.<namespace>.<op>[.<overload>]
        parts = target[len("torch.ops."):].split(".")
        return 2 <= len(parts) <= 3 and all(p.isidentifier() for p in parts)
    if target.startswith("_operator."):
        return target[len("_operator."):] in _SAFE_OPERATOR
    if target.startswith("math.") and target.count(".") == 1:
        return True
    return target in _SAFE_TORCH


def refused_global(exc: BaseException) -> str:
    """The global a weights-only unpickling refused, from torch's message ("posix.system")."""
    match = re.search(r"(?:GLOBAL|global:?) ([\w.]+)", str(exc))
    return f"it refers to {match.group(1)}" if match else "it refers to a Python object"


@contextlib.contextmanager
def _weights_only() -> Iterator[list[str]]:
    """Within: every torch.load is weights_only, plain unpickling and torchbind loads fail."""
    import torch
    from torch.export.pt2_archive import _package

    refused: list[str] = []
    real_load = torch.load

    def safe_load(f: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        try:
            return real_load(f, *args, **kwargs)
        except pickle.UnpicklingError as exc:
            refused.append(refused_global(exc))
            raise

    def no_unpickling(*_args: Any, **_kwargs: Any) -> Any:
        refused.append("a pickled Python object")
        raise pickle.UnpicklingError("modelport refuses to unpickle Python objects")

    class _Pickle:
        def __getattr__(self, name: str) -> Any:
            return no_unpickling if name in ("loads", "load") else getattr(pickle, name)

    saved = (torch.load, _package.pickle, torch._C._pickle_load_obj)
    torch.load = safe_load
    _package.pickle = _Pickle()
    torch._C._pickle_load_obj = no_unpickling
    try:
        yield refused
    finally:
        torch.load, _package.pickle, torch._C._pickle_load_obj = saved


def load_export(path: str, trust_code: bool) -> Any:
    """``torch.export.load`` that cannot unpickle arbitrary objects unless ``trust_code``."""
    import torch

    if trust_code:
        return torch.export.load(path)
    with open(path, "rb") as f, _weights_only() as refused, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one open file above: the path cannot be swapped
        try:
            return torch.export.load(f)
        except Exception as exc:
            if refused:
                raise UnsafeModelError(
                    "this torch.export archive pickles Python objects (sample inputs, "
                    "constants or weights that are not plain tensors), and unpickling them "
                    f"can run code ({refused[0]}); " + TRUST_HINT, path=path) from exc
            raise
