"""modelport -O2 against onnxslim and onnxsim on the same ONNX files, from every source.

One command, one run, one table: for each model an ONNX file is made once (the baseline) and
modelport -O2, onnxslim and onnxsim are each applied to that same file:

- ``pytorch``, ``hf``: the PyTorch test models and Hugging Face architectures (ResNet,
  MobileNetV2, ConvNeXt, ViT, BERT, GPT-2; small configs, random weights), exported by
  ``torch.onnx.export(..., dynamo=True)`` with a dynamic batch;
- ``keras``, ``caffe``: the Keras importer's test models and the real Keras 1/2 files of the
  shared corpus; the demo LeNet and published Caffe nets of the corpus. The peers cannot read
  these formats, so the baseline is modelport's own ``-O0`` conversion (the importer's output,
  no optimiser) and the target is checked on ``modelport -O2`` of that file; the table also
  gives ``modelport -O2`` straight from the source file (what a user runs) for comparison;
- ``tf2onnx``: ONNX made by tf2onnx 1.17 (opset 17) from the frozen TensorFlow graphs of the
  shared corpus and from the TensorFlow importer's test models frozen with a dynamic batch.

(see benchmarks/_optimizer_sources.py). The optimisers:

- ``modelport``: ``modelport.convert(file, out, level=2)`` (the whole pipeline);
- ``onnxslim``: ``onnxslim.slim`` with its defaults;
- ``onnxsim``: ``onnxsim.simplify``, in this interpreter when it imports onnxsim, else in
  ``.venv-bench-torch``; its column says n/a when neither has it.

Per model: node counts (subgraphs included), onnxruntime CPU latency (one intra-op and one
inter-op thread per session, batch 1, variants interleaved call by call in a shuffled order,
medians; ``--rounds 0`` skips timing), and every output of every variant checked against the
baseline's on seeded inputs (batch 3 where the batch is dynamic; ``rtol=1e-3, atol=1e-4``).
Ratios are modelport's count / latency over the better (smaller, faster) of the two peers.

    PYTHONPATH=. .venv-bench/bin/python benchmarks/onnx_optimizer_quality.py \
        [--groups pytorch,hf,keras,caffe,tf2onnx] [--models a,b] [--rounds 3] [--json F]

Exit status 1 if on any model modelport -O2 has more nodes than the better peer, is more than
``--latency-slack`` (default 5 %) slower than the faster peer, fails, or if any variant's
outputs differ from the baseline's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from _optimizer_sources import GROUPS, Prepared  # noqa: E402
from pytorch_graph_quality import (  # noqa: E402
    count_nodes,
    onnxsim_available,
    session,
    simplify,
    time_variants,
)

RTOL, ATOL = 1e-3, 1e-4
PEERS = ("onnxslim", "onnxsim")


def run_onnxsim(src: str, dst: str) -> bool:
    try:
        import onnxsim
    except ImportError:
        if not onnxsim_available():
            return False
        simplify(src, dst)
        return True
    with contextlib.redirect_stdout(io.StringIO()):
        model, ok = onnxsim.simplify(onnx.load(src))
    if not ok:
        raise RuntimeError("onnxsim could not check its result")
    onnx.save(model, dst)
    return True


def run_onnxslim(src: str, dst: str) -> bool:
    try:
        import onnxslim
    except ImportError:
        return False
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        onnx.save(onnxslim.slim(onnx.load(src)), dst)
    return True


def feeds_for(path: str, batch: int, fixed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Seeded inputs: every symbolic or unknown dim is ``batch``; integers in [0, 4) (valid
    indices for every embedding here); ``fixed`` ones as given."""
    rng = np.random.default_rng(0)
    feeds = {}
    for value in onnx.load(path, load_external_data=False).graph.input:
        if value.name in fixed:
            feeds[value.name] = fixed[value.name]
            continue
        t = value.type.tensor_type
        shape = [batch if d.dim_param or not d.dim_value else d.dim_value for d in t.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        if dtype.kind in "iu":
            feeds[value.name] = rng.integers(0, 4, shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[value.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def is_dynamic(path: str) -> bool:
    return any(d.dim_param or not d.dim_value
               for v in onnx.load(path, load_external_data=False).graph.input
               for d in v.type.tensor_type.shape.dim)


def outputs_of(sess, feeds) -> dict[str, np.ndarray]:
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def compare(got: dict, want: dict) -> tuple[bool, float]:
    """(all close, max abs error); by name where the names agree, else by position (the
    caller reports renamed outputs)."""
    if set(got) == set(want):
        pairs = [(got[k], want[k]) for k in want]
    elif len(got) == len(want):
        pairs = list(zip(got.values(), want.values()))
    else:
        return False, float("inf")
    ok, worst = True, 0.0
    for g, w in pairs:
        if g.shape != w.shape:
            return False, float("inf")
        if g.size:
            diff = np.abs(g.astype(np.float64) - w.astype(np.float64))
            worst = max(worst, float(np.nanmax(diff)) if diff.size else 0.0)
        ok &= bool(np.allclose(g, w, rtol=RTOL, atol=ATOL, equal_nan=True))
    return ok, worst


class NotMeasured(Exception):
    """The baseline file cannot be measured (its maker's failure, not an optimiser's)."""


def measure(name: str, group: str, prep: Prepared, tmp: str, args) -> dict:
    import modelport

    base = prep.baseline
    try:
        session(base)
    except Exception as exc:
        raise NotMeasured(f"the {prep.made_by} file does not load in onnxruntime: "
                          f"{str(exc).splitlines()[0][-160:]}") from None
    paths = {"baseline": base, "modelport-O2": os.path.join(tmp, f"{name}.mp2.onnx")}
    row: dict = {"model": name, "group": group, "made_by": prep.made_by, "errors": {}}
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            result = modelport.convert(base, paths["modelport-O2"], level=2, force=True)
        row["passes"] = result.optimization["passes"]
    except Exception as exc:  # the row reports it; the run goes on
        row["errors"]["modelport-O2"] = f"{type(exc).__name__}: {exc}"[:300]
        del paths["modelport-O2"]
    row["seconds"] = {"modelport-O2": time.perf_counter() - start}
    if prep.direct:
        paths["modelport-O2-source"] = prep.direct
    for peer, run in (("onnxslim", run_onnxslim), ("onnxsim", run_onnxsim)):
        dst = os.path.join(tmp, f"{name}.{peer}.onnx")
        start = time.perf_counter()
        try:
            if run(base, dst):
                paths[peer] = dst
            else:
                row["errors"][peer] = "not installed"
        except (Exception, subprocess.CalledProcessError) as exc:
            row["errors"][peer] = f"{type(exc).__name__}: {exc}"[:300]
        row["seconds"][peer] = time.perf_counter() - start
    row["nodes"] = {k: count_nodes(onnx.load(p).graph) for k, p in paths.items()}
    sessions = {}
    for key, p in paths.items():
        try:
            sessions[key] = session(p)
        except Exception as exc:
            row["errors"][key] = f"onnxruntime cannot load: {exc}"[:300]
    check = feeds_for(base, 3 if is_dynamic(base) else 1, prep.feeds)
    want = outputs_of(sessions["baseline"], check)
    row["max_abs_err"], row["numerics_ok"], row["renamed"] = {}, {}, {}
    for key, s in sessions.items():
        names = [o.name for o in s.get_outputs()]
        if names != list(want):  # an interface change, even where the numbers agree
            row["renamed"][key] = f"outputs {list(want)} became {names}"
        try:
            ok, err = compare(outputs_of(s, check), want)
        except Exception as exc:
            ok, err = False, float("inf")
            row["errors"][key] = f"onnxruntime fails: {exc}"[:300]
        row["numerics_ok"][key], row["max_abs_err"][key] = ok, err
    row["latency_s"] = (time_variants(sessions, feeds_for(base, 1, prep.feeds), args.rounds,
                                      args.calls) if args.rounds > 0 else {})
    judge(row, args.latency_slack)
    return row


def judge(row: dict, slack: float) -> None:
    """row["misses"]: what keeps modelport -O2 (on the baseline file) from the target."""
    misses = []
    nodes, lat = row["nodes"], row["latency_s"]
    peers = [k for k in PEERS if k in nodes and row["numerics_ok"].get(k)]
    if "modelport-O2" not in nodes or "modelport-O2" not in row["numerics_ok"]:
        misses.append("modelport failed")
    elif not peers:
        misses.append("no peer to compare with")
    else:
        best = min(nodes[k] for k in peers)
        row["node_ratio"] = nodes["modelport-O2"] / best
        if nodes["modelport-O2"] > best:
            misses.append("nodes")
        if lat:
            best = min(lat[k] for k in peers)
            row["latency_ratio"] = lat["modelport-O2"] / best
            if lat["modelport-O2"] > best * (1 + slack):
                misses.append("latency")
    if "modelport-O2" in row["renamed"]:
        misses.append("outputs renamed")
    bad = [k for k, ok in row["numerics_ok"].items() if not ok]
    if bad:
        misses.append("numerics (" + ", ".join(bad) + ")")
    row["misses"] = misses


def cell_nodes(row, key) -> str:
    n = row["nodes"]
    if key not in n:
        return "failed" if key in row["errors"] and "not installed" not in row["errors"][
            key] else "n/a"
    mark = "" if row["numerics_ok"].get(key, False) else " (outputs differ)"
    if key in row.get("renamed", {}):
        mark += " (outputs renamed)"
    return f"{n[key]}{mark}"


def cell_lat(row, key) -> str:
    lat = row["latency_s"]
    return f"{lat[key] * 1e6:.0f}" if key in lat else "n/a"


def table(rows: list[dict], timed: bool) -> str:
    header = ["group", "model", "baseline (made by): nodes", "modelport -O2", "onnxslim",
              "onnxsim", "nodes / better peer"]
    if timed:
        header += ["µs baseline", "µs modelport -O2", "µs onnxslim", "µs onnxsim",
                   "latency / faster peer"]
    header += ["-O2 from source", "target"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if "nodes" not in row:
            lines.append("| " + " | ".join([row["group"], row["model"], "not measured: "
                                            + row["error"]] + [""] * (len(header) - 3)) + " |")
            continue
        cells = [row["group"], row["model"],
                 f"{row['nodes']['baseline']} ({row['made_by']})",
                 cell_nodes(row, "modelport-O2"), cell_nodes(row, "onnxslim"),
                 cell_nodes(row, "onnxsim"),
                 f"{row['node_ratio']:.2f}" if "node_ratio" in row else "n/a"]
        if timed:
            cells += [cell_lat(row, k) for k in ("baseline", "modelport-O2", *PEERS)]
            cells.append(f"{row['latency_ratio']:.2f}" if "latency_ratio" in row else "n/a")
        cells.append(cell_nodes(row, "modelport-O2-source")
                     if "modelport-O2-source" in row["nodes"] else "-")
        cells.append("met" if not row["misses"] else "**MISS: " + ", ".join(row["misses"])
                     + "**")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    import onnxruntime

    versions = []
    for mod in ("onnxslim", "onnxsim", "tf2onnx", "torch", "transformers", "tensorflow",
                "keras"):
        try:
            from importlib.metadata import version
            versions.append(f"{mod} {version(mod)}")
        except Exception:
            pass
    load = os.getloadavg()
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average {load[0]:.1f} at the end; onnxruntime {onnxruntime.__version__}, "
            + ", ".join(versions))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default=",".join(GROUPS))
    parser.add_argument("--models", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--latency-slack", type=float, default=0.05)
    parser.add_argument("--json", default=None)
    parser.add_argument("--keep", default=None, help="write every ONNX file into this folder")
    args = parser.parse_args()
    models = {}
    for group in args.groups.split(","):
        models.update({name: (group, prepare) for name, prepare in GROUPS[group]().items()})
    names = args.models.split(",") if args.models else list(models)
    rows = []
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            tmp = args.keep
        for name in names:
            group, prepare = models[name]
            try:
                prep = prepare(Path(tmp))
            except Exception as exc:
                rows.append({"model": name, "group": group, "misses": ["not measured"],
                             "error": f"{type(exc).__name__}: {exc}"[:200].replace("|", "/")})
                print(f"{name}: could not make the baseline: {rows[-1]['error']}",
                      file=sys.stderr, flush=True)
                continue
            try:
                rows.append(measure(name, group, prep, tmp, args))
            except NotMeasured as exc:
                rows.append({"model": name, "group": group, "misses": ["not measured"],
                             "error": str(exc).replace("|", "/").replace(tmp + os.sep, "")})
                print(f"{name}: {exc}", file=sys.stderr, flush=True)
                continue
            r = rows[-1]
            print(f"{name}: nodes {r['nodes']} misses {r['misses']} errors {r['errors']} "
                  f"renamed {r['renamed']}",
                  file=sys.stderr, flush=True)
    print(table(rows, args.rounds > 0))
    measured = [r for r in rows if "nodes" in r]
    met = [r for r in measured if not r["misses"]]
    worst = max((e for r in measured for k, e in r["max_abs_err"].items()
                 if r["numerics_ok"][k]), default=0.0)
    print(f"\n{len(met)} of {len(measured)} measured models meet the target "
          f"({len(rows) - len(measured)} could not be measured); max abs error of any variant "
          f"whose outputs agree with the baseline's: {worst:.2g}; "
          f"{(time.time() - started) / 60:.0f} min")
    print(f"machine: {machine()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2, default=str)
    missed = [r["model"] for r in rows if r["misses"]]
    if missed:
        print(f"target missed or not measured on: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
