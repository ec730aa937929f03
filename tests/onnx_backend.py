"""The ONNX backend test suite (carried by the ``onnx`` package) run through ``modelport convert``.

For each case, on the machine the suite runs on: run the *original* model in onnxruntime and
compare with the expected outputs the case ships. Where onnxruntime cannot run the original
correctly here (no kernel, a type its Python API cannot pass, results that differ), conversion
cannot be judged: the case's outcome is ``unrunnable``, with onnxruntime's reason. Every case
onnxruntime does run correctly is converted at the given -O level with the ``modelport convert``
command (in process) and the converted model must run and match the expected outputs too.

This is decided per case at run time, never from a list: onnxruntime's coverage differs between
machines (CPU features change which float8/int kernels are exact). ``onnx_backend_exclusions.tsv``
holds only cases excluded for reasons that do not depend on the machine, each with its reason.

``python -m tests.onnx_backend [0 1 2]`` prints the counts and every case not judged (docs/formats/onnx.md).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import sys
import tempfile
import warnings
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

DATA_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
MODEL_KINDS = ("simple", "pytorch-converted", "pytorch-operator", "real")


@dataclasses.dataclass
class Case:
    name: str
    kind: str
    model: onnx.ModelProto | None
    model_path: str | None
    data_sets: list[tuple[list[Any], list[Any]]]
    rtol: float
    atol: float


@functools.lru_cache(maxsize=1)
def node_cases() -> dict[str, Any]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return {c.name: c for c in collect_testcases(None)}


def case_names() -> list[str]:
    names = [f"node/{n}" for n in sorted(node_cases())]
    for kind in MODEL_KINDS:
        kind_dir = os.path.join(DATA_DIR, kind)
        names += [f"{kind}/{n}" for n in sorted(os.listdir(kind_dir))
                  if os.path.isdir(os.path.join(kind_dir, n))]
    return names


def _read_proto_value(path: str, value_info: onnx.ValueInfoProto | None) -> Any:
    with open(path, "rb") as f:
        data = f.read()
    which = value_info.type.WhichOneof("value") if value_info is not None else "tensor_type"
    if which == "sequence_type":
        seq = onnx.SequenceProto()
        seq.ParseFromString(data)
        return numpy_helper.to_list(seq)
    if which == "optional_type":
        opt = onnx.OptionalProto()
        opt.ParseFromString(data)
        return numpy_helper.to_optional(opt)
    tensor = onnx.TensorProto()
    tensor.ParseFromString(data)
    return numpy_helper.to_array(tensor)


def load_case(name: str) -> Case:
    kind, _, test = name.partition("/")
    if kind == "node":
        c = node_cases()[test]
        return Case(name, kind, c.model, None, list(c.data_sets), c.rtol, c.atol)
    import json

    case_dir = os.path.join(DATA_DIR, kind, test)
    rtol, atol = 1e-3, 1e-7
    meta_path = os.path.join(case_dir, "data.json")
    meta = {}
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        rtol, atol = meta.get("rtol", rtol), meta.get("atol", atol)
    model_path = os.path.join(case_dir, "model.onnx")
    if not os.path.exists(model_path):
        return _light_case(name, meta, rtol, atol)
    model = onnx.load(model_path)
    inits = {i.name for i in model.graph.initializer}
    ins = [i for i in model.graph.input if i.name not in inits]
    outs = list(model.graph.output)
    data_sets = []
    for ds in sorted(d for d in os.listdir(case_dir) if d.startswith("test_data_set")):
        ds_dir = os.path.join(case_dir, ds)
        n_in = len([f for f in os.listdir(ds_dir) if f.startswith("input_")])
        n_out = len([f for f in os.listdir(ds_dir) if f.startswith("output_")])
        inputs = [_read_proto_value(os.path.join(ds_dir, f"input_{i}.pb"),
                                    ins[i] if i < len(ins) else None) for i in range(n_in)]
        outputs = [_read_proto_value(os.path.join(ds_dir, f"output_{i}.pb"),
                                     outs[i] if i < len(outs) else None) for i in range(n_out)]
        data_sets.append((inputs, outputs))
    return Case(name, kind, model, model_path, data_sets, rtol, atol)


def _light_case(name: str, meta: dict, rtol: float, atol: float) -> Case:
    """'real' cases point at the light models shipped with onnx: inputs are the backend
    runner's deterministic dummy data, expected outputs the shipped ``_output_0.pb``."""
    from onnx.backend.test.runner import Runner

    path = os.path.normpath(os.path.join(os.path.dirname(onnx.__file__), "..", meta["url"]))
    model = onnx.load(path)
    inits = {i.name for i in model.graph.initializer}
    inputs = [Runner.generate_dummy_data(x, seed=0, name=meta["model_name"], random=False)
              for x in model.graph.input if x.name not in inits]
    prefix = os.path.splitext(path)[0]
    outputs = [_read_proto_value(f"{prefix}_output_{i}.pb", None)
               for i in range(len(model.graph.output))]
    return Case(name, "real", model, path, [(inputs, outputs)], rtol, atol)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    text = re.sub(r"Load model from \S+ failed:", "", text)
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]


def _similar(got: Any, want: Any, rtol: float, atol: float) -> str | None:
    """None if ``got`` matches ``want`` (backend-suite semantics), else what differs."""
    if want is None or got is None:
        return None if (want is None and got is None) else "optional presence differs"
    if isinstance(want, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(want):
            return "sequence length differs"
        for g, w in zip(got, want):
            problem = _similar(g, w, rtol, atol)
            if problem:
                return problem
        return None
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if want.dtype == object or want.dtype.kind in "US":
        return None if np.array_equal(got.astype(str), want.astype(str)) else "strings differ"
    if got.dtype != want.dtype:
        return f"dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind in "biu":
        return None if np.array_equal(got, want) else "integer values differ"
    g, w = got.astype(np.float64), want.astype(np.float64)
    if not np.allclose(g, w, rtol=rtol, atol=atol, equal_nan=True):
        return f"values differ (max abs err {np.nanmax(np.abs(g - w)):.3g})"
    return None


def _run_ort(source: str | bytes, data_sets, rtol, atol) -> str | None:
    """None if onnxruntime (CPU) runs the model (a path, or serialized bytes) and every data
    set's outputs match the expected ones; else the first problem, in one line."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        return f"load: {_first_line(exc)}"
    names = [i.name for i in session.get_inputs()]
    outs = [o.name for o in session.get_outputs()]
    for inputs, expected in data_sets:
        feeds = {}
        for name, value in zip(names, inputs):
            if isinstance(value, onnx.TensorProto):
                value = numpy_helper.to_array(value)
            elif isinstance(value, np.generic):
                value = np.asarray(value)
            feeds[name] = value
        try:
            got = _run_session(session, outs, feeds)
        except Exception as exc:
            return f"run: {_first_line(exc)}"
        expected = [numpy_helper.to_array(e) if isinstance(e, onnx.TensorProto) else e
                    for e in expected]
        if len(got) != len(expected):
            return f"{len(got)} outputs, expected {len(expected)}"
        for i, (g, w) in enumerate(zip(got, expected)):
            problem = _similar(g, w, rtol, atol)
            if problem:
                return f"output {i}: {problem}"
    return None


def _run_session(session, outs: list[str], feeds: dict[str, Any]) -> list[Any]:
    """session.run, feeding ml_dtypes arrays (bfloat16, float8) that the numpy binding
    cannot take as OrtValues of their ONNX element type."""
    import onnxruntime as ort

    special = {k for k, v in feeds.items()
               if isinstance(v, np.ndarray) and v.dtype.kind == "V" or
               (isinstance(v, np.ndarray) and type(v.dtype).__module__.startswith("ml_dtypes"))}
    if not special:
        return session.run(outs, feeds)
    values = {}
    for k, v in feeds.items():
        if k in special:
            elem = onnx.helper.np_dtype_to_tensor_dtype(v.dtype)
            raw = np.ascontiguousarray(v).view(np.uint8 if v.itemsize == 1 else np.uint16)
            values[k] = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(raw, elem)
        else:
            values[k] = ort.OrtValue.ortvalue_from_numpy(v) if isinstance(v, np.ndarray) else v
    return [o.numpy() for o in session.run_with_ort_values(outs, values)]


@functools.lru_cache(maxsize=8)
def original_problem(name: str) -> str | None:
    """None if onnxruntime, on this machine, runs the original model of case ``name`` and
    matches its expected outputs; else why not (one line). Cached: the -O levels of a case
    that land in one process share the answer."""
    case = load_case(name)
    source = case.model_path or case.model.SerializeToString()
    return _run_ort(source, case.data_sets, case.rtol, case.atol)


UNRUNNABLE = "onnxruntime cannot run the original on this machine"


def run_case(name: str, level: int, workdir: str | None = None) -> tuple[str, str]:
    """('pass' | 'excluded' | 'unrunnable' | 'fail', reason) for one case at one -O level.

    'excluded': listed in the exclusions file (a reason independent of the machine);
    'unrunnable': onnxruntime here cannot run the original correctly, so conversion is not
    judged; 'fail': the conversion failed or the converted model does not match."""
    from click.testing import CliRunner

    from modelport.cli import cli

    excluded = exclusions().get(name)
    if excluded is not None:
        return "excluded", excluded
    problem = original_problem(name)
    if problem:
        return "unrunnable", f"{UNRUNNABLE}: {problem}"
    case = load_case(name)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        src = case.model_path
        if not src:
            src = os.path.join(tmp, "original.onnx")
            onnx.save(case.model, src)
        out = os.path.join(tmp, "converted.onnx")
        result = CliRunner().invoke(cli, ["convert", src, "-o", out, f"-O{level}", "--quiet"])
        if result.exit_code != 0:
            exc = result.exception
            reason = _first_line(exc) if exc and not isinstance(exc, SystemExit) else \
                result.output.strip()[:200]
            return "fail", f"convert: {reason}"
        problem = _run_ort(out, case.data_sets, case.rtol, case.atol)
        if problem:
            return "fail", f"converted model: {problem}"
    return "pass", ""


EXCLUSIONS_FILE = os.path.join(os.path.dirname(__file__), "onnx_backend_exclusions.tsv")


@functools.lru_cache(maxsize=1)
def exclusions() -> dict[str, str]:
    """Cases excluded for a reason that does not depend on the machine: name -> reason.
    Every entry must carry its reason."""
    result = {}
    with open(EXCLUSIONS_FILE) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, _, reason = line.rstrip("\n").partition("\t")
                if not reason.strip():
                    raise ValueError(f"{EXCLUSIONS_FILE}: {name} is listed without a reason")
                result[name] = reason
    return result


def main() -> None:
    from concurrent.futures import ProcessPoolExecutor

    levels = [int(a) for a in sys.argv[1:] if a.isdigit()] or [0, 1, 2]
    names = case_names()
    tasks = [(n, lvl) for n in names for lvl in levels]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        results = list(pool.map(_task, tasks, chunksize=16))
    kinds = ("pass", "fail", "unrunnable", "excluded")
    for lvl in levels:
        rows = [(n, s, r) for (n, l_), (s, r) in zip(tasks, results) if l_ == lvl]
        counts = {k: sum(1 for _, s, _ in rows if s == k) for k in kinds}
        print(f"-O{lvl}: {len(rows)} cases: " + ", ".join(f"{counts[k]} {k}" for k in kinds))
        for n, s, r in rows:
            if s != "pass":
                print(f"  {s}: {n}: {r}")


def _task(args: tuple[str, int]) -> tuple[str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return run_case(*args)
        except Exception as exc:  # a crash of the harness is a failure too
            return "fail", f"harness: {type(exc).__name__}: {_first_line(exc)}"


if __name__ == "__main__":
    main()
