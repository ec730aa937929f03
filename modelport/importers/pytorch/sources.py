"""Opening PyTorch sources: what the importer exports and what verification runs as reference.

:func:`open_source` turns a path or entry point and the user's options into a
:class:`TorchSource`: a callable module, the names of its inputs (the ONNX input names), example
tensors for tracing, and which of their dims are symbolic. The loader exports it; the
reference runner (``modelport.convert.runners.pytorch``) calls the same object in eager mode.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pickle
import sys
import warnings
from typing import Any

import torch

from modelport.errors import InputSpecError, InvalidModelError, UnsafeModelError, first_line
from modelport.importers.pytorch.format import archive_kind, is_entry_point
from modelport.importers.registry import LoadOptions, read_head

# Size used for a symbolic dim in the example inputs: torch.export specialises sizes 0 and 1.
EXAMPLE_SYMBOLIC_SIZE = 2
EXAMPLE_SEED = 0

_DTYPES = {
    "float32": torch.float32, "float": torch.float32, "float16": torch.float16,
    "half": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64,
    "double": torch.float64, "int64": torch.int64, "long": torch.int64, "int32": torch.int32,
    "int": torch.int32, "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8,
    "bool": torch.bool,
}


@dataclasses.dataclass
class TorchSource:
    kind: str  # "module" (entry point / pickle), "torchscript" or "export"
    path: str
    module: Any  # nn.Module, ScriptModule, or the ExportedProgram for "export"
    input_names: list[str]
    example_inputs: tuple[torch.Tensor, ...]
    # per input: {dim index: symbolic name}
    symbolic: dict[str, dict[int, str]] = dataclasses.field(default_factory=dict)
    # examples at the user's own sizes (what a fixed-shape export traces with)
    fixed_inputs: tuple[torch.Tensor, ...] = ()

    def callable(self) -> Any:
        """What eager verification calls with positional tensors."""
        if self.kind == "export":
            return self.module.module()
        return self.module


def output_names(count: int) -> list[str]:
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def flatten_outputs(result: Any) -> list[torch.Tensor]:
    """The tensors of a module's result in the order the ONNX exporter flattens them."""
    from torch.utils._pytree import tree_leaves

    return [leaf for leaf in tree_leaves(result) if isinstance(leaf, torch.Tensor)]


def open_source(path: str, options: LoadOptions) -> TorchSource:
    if is_entry_point(path):
        module = _module_from_entry_point(path, options)
        return _with_inputs("module", path, module, _forward_names(module, path), options)
    if not os.path.isfile(path):
        raise InvalidModelError("no such file", path=path)
    kind = archive_kind(path, read_head(path))
    if options.weights and kind in ("export", "torchscript"):
        raise InputSpecError(f"{path}: --weights applies to entry points "
                             "(package.module:factory); this archive holds its own weights")
    if kind == "export":
        return _open_export(path, options)
    if kind == "torchscript":
        if not options.trust_code:  # the pipeline's code check refuses first; kept for direct use
            from modelport.importers.pytorch.safety import check

            check(path, options, run=True)
        module = _load_torchscript(path)
        names = [a.name for a in module.forward.schema.arguments[1:]]
        return _with_inputs("torchscript", path, module, names, options)
    if kind == "pickle":
        module = _load_pickle(path, options)
        return _with_inputs("module", path, module, _forward_names(module, path), options)
    raise InvalidModelError("is not a PyTorch archive (.pt2, TorchScript or torch.save pickle)",
                            path=path)


# -- entry points and state_dicts --------------------------------------------------------------
def _module_from_entry_point(spec: str, options: LoadOptions) -> torch.nn.Module:
    module_name, _, attr = spec.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path:  # the console script does not put the working directory on the path
        sys.path.append(cwd)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidModelError(
            f"cannot import module {module_name!r} ({exc}); run from the directory that holds "
            "the package or add it to PYTHONPATH", path=spec) from exc
    for part in attr.split("."):
        if not hasattr(target, part):
            raise InvalidModelError(f"module {module_name!r} has no attribute {attr!r}",
                                    path=spec)
        target = getattr(target, part)
    if isinstance(target, torch.nn.Module):
        module = target
    elif callable(target):
        try:
            inspect.signature(target).bind()
        except TypeError as exc:
            raise InvalidModelError(
                f"{attr} cannot be called without arguments ({exc}); point at a function or "
                "class that builds the model with none", path=spec) from exc
        except ValueError:  # no signature (builtins): just call it
            pass
        module = target()
    else:
        raise InvalidModelError(f"{attr!r} is neither a function nor a class", path=spec)
    if not isinstance(module, torch.nn.Module):
        raise InvalidModelError(
            f"{attr}() returned {type(module).__name__}, not a torch.nn.Module", path=spec)
    if options.weights:
        load_state_dict(module, options.weights)
    return module.eval()


def load_state_dict(module: torch.nn.Module, path: str) -> None:
    """Load a ``state_dict`` file into ``module`` with ``weights_only=True`` (no code runs)."""
    if not os.path.isfile(path):
        raise InvalidModelError("no such weights file", path=path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeModelError(
            "is not a plain state_dict (it pickles Python objects, and loading it would run "
            "code); save model.state_dict() instead", path=path) from exc
    except Exception as exc:
        raise InvalidModelError(f"cannot read as a state_dict ({first_line(exc)})",
                                path=path) from exc
    state = _unwrap_checkpoint(state)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidModelError("does not hold a state_dict (a dict of tensors)", path=path)
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    result = module.load_state_dict(state, strict=False)
    problems = []
    if result.missing_keys:
        problems.append(f"missing {_few(result.missing_keys)}")
    if result.unexpected_keys:
        problems.append(f"unexpected {_few(result.unexpected_keys)}")
    if problems:
        raise InvalidModelError(
            f"does not fit the module: {'; '.join(problems)}", path=path)


def _unwrap_checkpoint(state: Any) -> Any:
    """Training checkpoints often nest the state_dict under one well-known key."""
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = state.get(key)
            if isinstance(inner, dict) and inner and all(
                    isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
    return state


def _load_pickle(path: str, options: LoadOptions) -> torch.nn.Module:
    from modelport.importers.pytorch.safety import refused_global

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not options.trust_code:
            raise UnsafeModelError(
                f"pickles Python objects, not only tensors ({refused_global(exc)}: a whole "
                "module, or anything else), and unpickling them runs code from the file; "
                "pass --trust-code if you trust its origin, or better save model.state_dict() "
                "and convert 'package.module:factory --weights FILE', or save a .pt2 with "
                "torch.export.save", path=path) from exc
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc2:
            raise InvalidModelError(f"cannot unpickle ({first_line(exc2)}); the classes it "
                                    "refers to must be importable", path=path) from exc2
    except (RuntimeError, OSError, ValueError, EOFError, KeyError) as exc:
        # torch's zip reader (miniz) and unpickler on a truncated or corrupt archive
        raise InvalidModelError(f"cannot be read as a torch.save archive (truncated or "
                                f"corrupt?): {first_line(exc)}", path=path) from exc
    if isinstance(obj, torch.nn.Module):
        return obj.eval()
    if isinstance(_unwrap_checkpoint(obj), dict):
        raise InvalidModelError(
            "holds only weights (a state_dict), not a model; give the code as an entry point: "
            "modelport convert package.module:factory --weights " + os.path.basename(path),
            path=path)
    raise InvalidModelError(f"holds a {type(obj).__name__}, not a torch.nn.Module", path=path)


def _load_torchscript(path: str) -> torch.jit.ScriptModule:
    try:
        return torch.jit.load(path, map_location="cpu").eval()
    except Exception as exc:
        raise InvalidModelError(f"cannot load as TorchScript ({first_line(exc)})",
                                path=path) from exc


def _forward_names(module: torch.nn.Module, path: str) -> list[str]:
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    names = []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is not p.empty:
            continue  # optional arguments keep their defaults
        names.append(p.name)
    return names


# -- inputs ------------------------------------------------------------------------------------
def _with_inputs(kind: str, path: str, module: Any, names: list[str],
                 options: LoadOptions) -> TorchSource:
    shapes = dict(options.input_shapes)
    if not names:
        names = list(shapes)
    unknown = [n for n in shapes if n not in names]
    if unknown and len(names) == len(shapes) == 1:
        # one input under another name: accept it, the model's own name wins
        shapes = {names[0]: next(iter(shapes.values()))}
        options.input_shapes.clear()
        options.input_shapes.update(shapes)
    elif unknown:
        raise InputSpecError(
            f"--input names {', '.join(unknown)}, but forward() takes {', '.join(names)}")
    missing = [n for n in names if n not in shapes]
    if missing:
        raise InputSpecError(
            f"{path}: a PyTorch module has no stored input shapes; give each input with "
            f"--input NAME:DIMS (missing: {', '.join(missing)}), e.g. --input {missing[0]}:1,3,224,224")
    symbolic = _symbolic_dims(names, shapes, options.dynamic)
    # Distinct example sizes per symbolic name, so torch.export does not take two dims that
    # happen to be equal in the example for the same dim.
    sizes: dict[str, int] = {}
    for name in names:
        for d in symbolic.get(name, {}).values():
            sizes.setdefault(d, EXAMPLE_SYMBOLIC_SIZE + len(sizes))
    examples, fixed = [], []
    for name in names:
        dtype = _dtype(options.input_dtypes.get(name, "float32"))
        marked = symbolic.get(name, {})
        dims = [sizes[marked[i]] if i in marked else d for i, d in enumerate(shapes[name])]
        given = [d if isinstance(d, int) else sizes[d] for d in shapes[name]]
        # the same seed per input, so fixed and symbolic examples hold the same kind of values
        examples.append(_example(dims, dtype, torch.Generator().manual_seed(EXAMPLE_SEED)))
        fixed.append(_example(given, dtype, torch.Generator().manual_seed(EXAMPLE_SEED)))
    # The pipeline applies options.input_shapes after import: keep symbolic dims symbolic.
    for name, dims in symbolic.items():
        options.input_shapes[name] = [dims.get(i, d) for i, d in enumerate(shapes[name])]
    return TorchSource(kind, path, module, names, tuple(examples), symbolic, tuple(fixed))


def _symbolic_dims(names: list[str], shapes: dict[str, list], dynamic: list[str]
                   ) -> dict[str, dict[int, str]]:
    """Dims named in --input shapes, plus dim 0 of every input for ``--dynamic batch``."""
    symbolic: dict[str, dict[int, str]] = {}
    seen: set[str] = set()
    for name in names:
        for i, d in enumerate(shapes[name]):
            if isinstance(d, str):
                symbolic.setdefault(name, {})[i] = d
                seen.add(d)
    for dim in dynamic:
        if dim == "batch":
            for name in names:
                if shapes[name]:
                    symbolic.setdefault(name, {})[0] = "batch"
            seen.add(dim)
        elif dim not in seen:
            raise InputSpecError(
                f"--dynamic {dim}: name that dim in an --input shape, e.g. "
                f"--input {names[0]}:1,{dim},16 (only 'batch' is known without it)")
    return symbolic


def _dtype(name: str) -> torch.dtype:
    try:
        return _DTYPES[str(name).lower().replace("torch.", "")]
    except KeyError:
        raise InputSpecError(f"unknown input dtype {name!r}; use one of "
                             f"{', '.join(sorted(_DTYPES))}") from None


def _example(dims: list[int], dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    if dtype.is_floating_point:
        return torch.randn(dims, generator=gen).to(dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, dims, generator=gen).bool()
    return torch.randint(0, 4, dims, generator=gen).to(dtype)


# -- torch.export archives ---------------------------------------------------------------------
def _open_export(path: str, options: LoadOptions) -> TorchSource:
    import logging

    from modelport.importers.pytorch.safety import load_export

    # torch logs a multi-line warning on stderr for a corrupt archive before raising: the
    # user gets the one-line error below instead.
    logger = logging.getLogger("torch.export")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        program = load_export(path, options.trust_code)
    except UnsafeModelError:
        raise
    except Exception as exc:
        raise InvalidModelError(f"cannot load as a torch.export archive ({first_line(exc)})",
                                path=path) from exc
    finally:
        logger.setLevel(level)
    from torch.export.graph_signature import InputKind

    names = [s.arg.name for s in program.graph_signature.input_specs
             if s.kind == InputKind.USER_INPUT]
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    symbolic: dict[str, dict[int, str]] = {}
    examples = []
    gen = torch.Generator().manual_seed(EXAMPLE_SEED)
    for name in names:
        fake = placeholders[name].meta.get("val")
        dims = []
        for i, d in enumerate(fake.shape):
            if isinstance(d, torch.SymInt):
                symbolic.setdefault(name, {})[i] = str(d)
                hint = d.node.hint if d.node.has_hint() else EXAMPLE_SYMBOLIC_SIZE
                dims.append(int(hint))
            else:
                dims.append(int(d))
        examples.append(_example(dims, fake.dtype, gen))
    batch_symbols = {symbolic.get(n, {}).get(0) for n in names}
    if len(batch_symbols) == 1 and None not in batch_symbols:
        for name in names:  # one symbol for dim 0 of every input: that is the batch
            symbolic[name][0] = "batch"
    wanted = [d for d in options.dynamic if d != "batch"]
    if "batch" in options.dynamic and not all(0 in symbolic.get(n, {}) for n in names):
        raise InputSpecError(
            f"{path}: --dynamic batch, but this torch.export archive was exported with a fixed "
            "batch; re-export it with dynamic_shapes={...: {0: torch.export.Dim('batch')}}")
    if wanted:
        raise InputSpecError(f"{path}: a .pt2 archive fixes its dynamic dims at export time; "
                             f"--dynamic {' '.join(wanted)} cannot change them")
    return TorchSource("export", path, program, names, tuple(examples), symbolic,
                       tuple(examples))


def _few(names: list[str], limit: int = 4) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more

