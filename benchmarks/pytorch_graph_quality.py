"""Graph quality of modelport's PyTorch output against its peers, on the test models.

For each model (tests/importers/pytorch/models.py, dynamic batch everywhere):

- ``torch``: plain ``torch.onnx.export(model, args, dynamo=True, dynamic_shapes=...)`` with its
  defaults (onnxscript's optimizer on): the baseline;
- ``modelport``: ``modelport.convert`` of the entry point at -O1 (and -O2);
- ``onnxslim``: onnxslim applied to the baseline;
- ``onnxsim``: onnxsim applied to the baseline, run in a separate virtualenv
  (``.venv-bench-torch``, since onnxsim must not enter the main environment); skipped, and
  said so, when that venv has no onnxsim.

It reports node counts and onnxruntime CPU latency (one thread, batch 1, 400 calls per
variant interleaved call by call in shuffled order, medians) as ratios to the baseline, and
every variant's max abs error against PyTorch eager.

    PYTHONPATH=. .venv/bin/python benchmarks/pytorch_graph_quality.py [--rounds 20] [--json F]

Exit status 1 if modelport's output has more nodes than the baseline or is more than
``--slack`` (default 5 %) slower on any model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ONNXSIM_VENV = os.path.join(ROOT, ".venv-bench-torch")


def count_nodes(graph: onnx.GraphProto) -> int:
    total = 0
    for node in graph.node:
        total += 1
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                total += count_nodes(attr.g)
            for g in attr.graphs:
                total += count_nodes(g)
    return total


def export_plain(name: str, path: str) -> None:
    import torch

    from tests.importers.pytorch.models import MODELS

    factory, shapes = MODELS[name]
    module = factory()
    args = tuple(torch.randn(*s) for s in shapes.values())
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, args, dynamo=True, verbose=False,
                                    dynamic_shapes={k: {0: batch} for k in shapes})
    program.save(path)


def export_modelport(name: str, path: str, level: int) -> None:
    import modelport
    from tests.importers.pytorch.models import MODELS

    shapes = MODELS[name][1]
    modelport.convert(f"tests.importers.pytorch.models:{name}", path, level=level, force=True,
                      input_shapes={k: [1] + s[1:] for k, s in shapes.items()},
                      dynamic=["batch"])


def slim(src: str, dst: str) -> None:
    import onnxslim

    onnx.save(onnxslim.slim(onnx.load(src)), dst)


def onnxsim_available() -> bool:
    python = os.path.join(ONNXSIM_VENV, "bin", "python")
    if not os.path.exists(python):
        return False
    return subprocess.run([python, "-c", "import onnxsim"], capture_output=True).returncode == 0


def simplify(src: str, dst: str) -> None:
    python = os.path.join(ONNXSIM_VENV, "bin", "python")
    code = ("import sys, onnx, onnxsim; m, ok = onnxsim.simplify(onnx.load(sys.argv[1])); "
            "assert ok; onnx.save(m, sys.argv[2])")
    subprocess.run([python, "-c", code, src, dst], check=True, capture_output=True)


def session(path: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def feeds_for(name: str) -> dict[str, np.ndarray]:
    from tests.importers.pytorch.models import MODELS

    rng = np.random.default_rng(0)
    return {k: rng.standard_normal([1] + s[1:]).astype(np.float32)
            for k, s in MODELS[name][1].items()}


def eager_outputs(name: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import torch

    from tests.importers.pytorch.models import MODELS

    with torch.no_grad():
        out = MODELS[name][0]()(*[torch.from_numpy(v) for v in feeds.values()])
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def time_variants(sessions: dict[str, ort.InferenceSession], feeds, rounds: int,
                  calls: int) -> dict[str, float]:
    """Median seconds per call. Variants are interleaved call by call, in a shuffled order each
    round, so that load from other processes falls on all of them alike."""
    import random

    order = list(sessions)
    samples: dict[str, list[float]] = {k: [] for k in sessions}
    for s in sessions.values():  # warm-up
        for _ in range(5):
            s.run(None, feeds)
    shuffle = random.Random(0).shuffle
    for _ in range(rounds * calls):
        shuffle(order)
        for key in order:
            start = time.perf_counter()
            sessions[key].run(None, feeds)
            samples[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> int:
    from tests.importers.pytorch.models import MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--slack", type=float, default=0.05)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    have_onnxsim = onnxsim_available()
    if not have_onnxsim:
        print(f"onnxsim: not installed in {ONNXSIM_VENV}; its column is skipped",
              file=sys.stderr)
    rows = []
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            paths = {"torch": os.path.join(tmp, f"{name}.torch.onnx")}
            export_plain(name, paths["torch"])
            for level in (1, 2):
                paths[f"modelport-O{level}"] = os.path.join(tmp, f"{name}.mp{level}.onnx")
                export_modelport(name, paths[f"modelport-O{level}"], level)
            paths["onnxslim"] = os.path.join(tmp, f"{name}.slim.onnx")
            slim(paths["torch"], paths["onnxslim"])
            if have_onnxsim:
                paths["onnxsim"] = os.path.join(tmp, f"{name}.sim.onnx")
                try:
                    simplify(paths["torch"], paths["onnxsim"])
                except subprocess.CalledProcessError as exc:
                    print(f"{name}: onnxsim failed: {exc.stderr.decode()[-300:]}",
                          file=sys.stderr)
                    del paths["onnxsim"]
            feeds = feeds_for(name)
            want = eager_outputs(name, feeds)
            sessions = {k: session(p) for k, p in paths.items()}
            errors = {}
            for key, s in sessions.items():
                got = s.run(None, feeds)
                errors[key] = max(float(np.abs(g - w).max()) for g, w in zip(got, want))
            latency = time_variants(sessions, feeds, args.rounds, args.calls)
            protos = {k: onnx.load(p) for k, p in paths.items()}
            nodes = {k: count_nodes(m.graph) for k, m in protos.items()}
            same = [n.op_type for n in protos["modelport-O1"].graph.node] == [
                n.op_type for n in protos["torch"].graph.node]
            row = {"model": name, "nodes": nodes, "latency_s": latency, "max_abs_err": errors,
                   "same_ops_as_torch": same,
                   "node_ratio": {k: nodes[k] / nodes["torch"] for k in nodes},
                   "latency_ratio": {k: latency[k] / latency["torch"] for k in latency}}
            rows.append(row)
            mp = "modelport-O1"
            if nodes[mp] > nodes["torch"] or latency[mp] > latency["torch"] * (1 + args.slack):
                failed.append(name)
            print(f"{name}: done", file=sys.stderr, flush=True)
    variants = [k for k in rows[0]["nodes"] if k != "torch"]
    header = ["model", "torch nodes", "torch µs"] + [f"{v} nodes/lat" for v in variants] + [
        "-O1 ops = torch's"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [row["model"], str(row["nodes"]["torch"]),
                 f"{row['latency_s']['torch'] * 1e6:.0f}"]
        for v in variants:
            if v in row["nodes"]:
                cells.append(f"{row['nodes'][v]} ({row['node_ratio'][v]:.2f}) / "
                             f"{row['latency_ratio'][v]:.2f}")
            else:
                cells.append("n/a")
        cells.append("yes" if row["same_ops_as_torch"] else "no")
        print("| " + " | ".join(cells) + " |")
    worst = max(max(r["max_abs_err"].values()) for r in rows)
    print(f"\nmax abs error of any variant against PyTorch eager: {worst:.2g}")
    print("cells: node count (ratio to torch) / latency ratio to torch; ratios < 1 are better")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    if failed:
        print(f"modelport -O1 is larger or slower than torch.onnx.export on: "
              f"{', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
