"""TensorFlow ResNet-50 (frozen GraphDef and SavedModel) -> ONNX: modelport against tf2onnx.

ResNet-50 (``keras.applications``, ``weights=None``, Keras 3 on TensorFlow, seeded) is written
twice: frozen to a ``.pb`` with ``convert_variables_to_constants_v2`` (input 1x224x224x3) and
exported as a SavedModel with ``model.export()``. Each converter runs in its own process on the
same files, ``--repeat`` times, round-robin, each run after removing the previous run's output
and an ``os.sync()``; the table gives:

* wall time, median (process start to exit, interpreter start-up included);
* CPU time (user + system) of the converting process, median: less disturbed by other load on
  a shared machine than the wall time (TensorFlow's threads add theirs);
* peak resident memory of the converting process (``ru_maxrss`` from ``wait4``), median;
* the ONNX graph's node count;
* the largest absolute difference from TensorFlow's output on a seeded input (onnxruntime).

Commands: ``python -m modelport convert SRC -o out.onnx`` (default -O1, and again with -O2,
which adds MatMul+Add -> Gemm; the BatchNorms are folded into the convolutions at import at
either level) and
``python -m tf2onnx.convert --graphdef model.pb --inputs x:0 --outputs Identity:0 --opset 17``
or ``python -m tf2onnx.convert --saved-model DIR --opset 17`` from ``.venv-bench`` (tf2onnx
there, TensorFlow shared with the main environment, as for ``keras_bench``).

Targets (issue 13): modelport at least 15x faster than tf2onnx, no more nodes, peak memory under
2x the weight bytes + 150 MB.

Usage::

    .venv/bin/python -m benchmarks.tensorflow_bench [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script (benchmarks/run.py does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import BENCH_PY, TF_SCRIPT_HEAD, median_run, precompile_modelport  # noqa: E402
from benchmarks.keras_bench import MemoryCapExceeded, run_measured  # noqa: E402

_MAKE = TF_SCRIPT_HEAD + """model = keras.applications.ResNet50(weights=None)
x = np.random.default_rng(0).standard_normal((1, 224, 224, 3)).astype(np.float32)
fn = tf.function(lambda x: model(x, training=False))
concrete = fn.get_concrete_function(tf.TensorSpec((1, 224, 224, 3), tf.float32, name="x"))
frozen = convert_variables_to_constants_v2(concrete)
open(f"{out}/resnet50.pb", "wb").write(frozen.graph.as_graph_def().SerializeToString())
y_frozen = np.asarray(frozen(tf.constant(x))[0])
model.export(f"{out}/resnet50_savedmodel", verbose=False)
sig = tf.saved_model.load(f"{out}/resnet50_savedmodel").signatures["serving_default"]
(key,) = sig.structured_input_signature[1]
(y_saved,) = sig(**{key: tf.constant(x)}).values()
weights = sum(int(np.prod(w.shape)) * 4 for w in model.weights)
np.savez(f"{out}/resnet50.npz", x=x, y_frozen=y_frozen, y_saved=np.asarray(y_saved),
         input=frozen.inputs[0].name, output=frozen.outputs[0].name, weights=weights)
"""


# Node count and error are measured in a child process: a child's peak RSS as wait4 reports it
# starts from this process's RSS when it is spawned, so this process must not grow (onnx and
# onnxruntime sessions of ResNet-50 would add some 250 MB to every later measurement).
_EVAL = """
import sys
import numpy as np, onnx, onnxruntime as ort
path, npz, key = sys.argv[1:]
ref = np.load(npz)
nodes = len(onnx.load(path, load_external_data=False).graph.node)
try:
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: ref["x"]})[0]
    error = f"{float(np.abs(got - ref[key]).max()):.1e}"
except Exception as exc:  # a peer's output that onnxruntime refuses is a result too
    error = "onnxruntime fails: " + str(exc).split(":")[-1].strip()[:80]
print(nodes, error)
"""


def _evaluate(path: str, npz: Path, key: str, env: dict) -> tuple[int, str]:
    """(ONNX node count, max abs error against TensorFlow's output ``key``)."""
    proc = subprocess.run([sys.executable, "-c", _EVAL, path, str(npz), key],
                          capture_output=True, text=True, env=env, check=True)
    nodes, error = proc.stdout.strip().splitlines()[-1].split(" ", 1)
    return int(nodes), error


def _mb(n: float) -> str:
    return f"{n / 2**20:.0f} MB"


def _children_cpu() -> float:
    """User + system CPU seconds of the reaped child processes so far (run_measured reaps each
    converter with wait4, which adds its usage here): a figure that a loaded shared machine
    disturbs less than the wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per tool and file; the table gives their medians")
    ap.add_argument("--mem-cap-gib", type=float, default=8.0,
                    help="kill a converter whose RSS passes this (protects a shared machine)")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "modelport-bench"))
    args = ap.parse_args(argv)
    precompile_modelport()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    tf2onnx_ok = BENCH_PY.exists() and subprocess.run(
        [str(BENCH_PY), "-c", "import tf2onnx"], capture_output=True, env=env).returncode == 0
    cache = Path(args.cache) / "tensorflow_resnet50"
    if not (cache / "resnet50.npz").exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-c", _MAKE, str(cache)], check=True, env=env,
                       capture_output=True)
    npz = cache / "resnet50.npz"
    info = json.loads(subprocess.run(
        [sys.executable, "-c", "import json, sys, numpy as np; r = np.load(sys.argv[1]); "
         "print(json.dumps({k: r[k].item() for k in ('input', 'output', 'weights')}))",
         str(npz)], capture_output=True, text=True, check=True).stdout)
    weights = int(info["weights"])
    budget = 2 * weights + 150 * 2**20
    cap = int(args.mem_cap_gib * 2**30)
    pb, saved = str(cache / "resnet50.pb"), str(cache / "resnet50_savedmodel")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for source, src, key in (("frozen .pb", pb, "y_frozen"), ("SavedModel", saved, "y_saved")):
            tag = "pb" if src == pb else "sm"
            runs = {tool: [sys.executable, "-m", "modelport", "convert", src, "-o",
                           f"{tmp}/{tag}_{level}.onnx", "--force", "--quiet", f"-{level}"]
                    for tool, level in (("modelport", "O1"), ("modelport -O2", "O2"))}
            if tf2onnx_ok:
                peer = (["--graphdef", pb, "--inputs", info["input"], "--outputs",
                         info["output"]] if src == pb else ["--saved-model", saved])
                runs["tf2onnx"] = [str(BENCH_PY), "-m", "tf2onnx.convert", *peer, "--opset",
                                   "17", "--output", f"{tmp}/{tag}_tf2onnx.onnx"]
            samples: dict[str, list[tuple[float, int]]] = {tool: [] for tool in runs}
            cpu: dict[str, list[float]] = {tool: [] for tool in runs}
            failed: dict[str, str] = {}
            for _ in range(args.repeat):
                for tool, cmd in runs.items():
                    if tool in failed:
                        continue
                    # the previous run's output is removed first: freeing its 100 MB is
                    # not part of converting (both tools would otherwise pay it)
                    for arg in cmd:
                        if arg.startswith(tmp) and arg.endswith(".onnx") and os.path.exists(arg):
                            os.remove(arg)
                    os.sync()
                    before = _children_cpu()
                    try:
                        wall, peak, _ = run_measured(cmd, env, cap)
                    except (MemoryCapExceeded, RuntimeError) as exc:
                        failed[tool] = str(exc).strip().splitlines()[-1][:120]
                        continue
                    samples[tool].append((wall, peak))
                    cpu[tool].append(_children_cpu() - before)
            result: dict[str, dict] = {}
            for tool in runs:
                if tool in failed:
                    rows.append([source, tool, failed[tool], "-", "-", "-", "-", "-"])
                    continue
                out = {"modelport": f"{tmp}/{tag}_O1.onnx", "modelport -O2": f"{tmp}/{tag}_O2.onnx",
                       "tf2onnx": f"{tmp}/{tag}_tf2onnx.onnx"}[tool]
                wall, peak = median_run(samples[tool])
                nodes, error = _evaluate(out, npz, key, env)
                cpu_s = statistics.median(cpu[tool])
                result[tool] = {"wall": wall, "nodes": nodes, "peak": peak, "cpu": cpu_s}
                runs_s = ", ".join(f"{w:.2f}" for w, _ in samples[tool])
                rows.append([source, tool, f"{wall:.2f} s ({runs_s})", f"{cpu_s:.2f} s",
                             _mb(peak),
                             f"{peak / weights:.2f}x",
                             str(nodes), error])
                print(", ".join(rows[-1]), flush=True)
            if "tf2onnx" in result and len(result) == 3:
                for name in ("modelport", "modelport -O2"):
                    mp, peer = result[name], result["tf2onnx"]
                    print(f"{source}: {name} {peer['wall'] / mp['wall']:.1f}x faster than "
                          f"tf2onnx ({peer['cpu'] / mp['cpu']:.1f}x in CPU time), "
                          f"{mp['nodes']} nodes against {peer['nodes']}, peak "
                          f"{_mb(mp['peak'])} (budget {_mb(budget)})", flush=True)
    print()
    print(f"ResNet-50 weights: {_mb(weights)}; memory budget 2x weights + 150 MB = "
          f"{_mb(budget)}")
    print()
    print("| source | converter | wall, median (runs) | CPU time, median | peak RSS | "
          "peak / weights | ONNX nodes | max abs error vs TensorFlow |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if not tf2onnx_ok:
        print("\ntf2onnx not found in .venv-bench: only modelport was measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
