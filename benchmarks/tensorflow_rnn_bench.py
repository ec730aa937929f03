"""Frozen 2-layer Keras LSTM (TF 2 GraphDef with loops) -> ONNX: modelport against tf2onnx.

The model (LSTM(128, return_sequences) -> LSTM(128), 50 steps of 32 features, batch 1, seeded
weights) is frozen twice with ``convert_variables_to_constants_v2``: with the default lowering
(TF 1 loop frames) and with ``lower_control_flow=False`` (functional While). Each converter
runs in its own process per file, ``--repeat`` times, round-robin; the table gives:

* wall time, median (process start to exit, interpreter start-up included);
* the ONNX graph's node count, top level and with Loop/If bodies;
* the largest absolute difference from TensorFlow's output on a seeded input (onnxruntime).

Commands: ``python -m modelport convert model.pb -o out.onnx`` (default -O1) and
``python -m tf2onnx.convert --graphdef model.pb --inputs x:0 --outputs Identity:0 --opset 17``
from ``.venv-bench`` (tf2onnx there, TensorFlow shared with the main environment).

Usage::

    .venv/bin/python -m benchmarks.tensorflow_rnn_bench [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script (benchmarks/run.py does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import BENCH_PY, ROOT, TF_SCRIPT_HEAD, precompile_modelport  # noqa: E402

_MAKE = TF_SCRIPT_HEAD + """model = keras.Sequential([keras.Input((50, 32)), keras.layers.LSTM(128, return_sequences=True),
                          keras.layers.LSTM(128)])
fn = tf.function(lambda x: model(x, training=False))
concrete = fn.get_concrete_function(tf.TensorSpec((1, 50, 32), tf.float32, name="x"))
x = np.random.default_rng(0).standard_normal((1, 50, 32)).astype(np.float32)
for lower, name in ((True, "lstm2_lowered"), (False, "lstm2_functional")):
    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=lower)
    graph_def = frozen.graph.as_graph_def()
    open(f"{out}/{name}.pb", "wb").write(graph_def.SerializeToString())
    y = frozen(tf.constant(x))
    y = y[0] if isinstance(y, (list, tuple)) else y
    np.savez(f"{out}/{name}.npz", x=x, y=np.asarray(y),
             output=frozen.outputs[0].name, input=frozen.inputs[0].name)
"""


def _nodes(path: str) -> tuple[int, int]:
    import onnx

    model = onnx.load(path, load_external_data=False)

    def count(graph) -> int:
        n = 0
        for node in graph.node:
            n += 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    n += count(attr.g)
        return n

    return len(model.graph.node), count(model.graph)


def _error(path: str, ref: dict) -> str:
    import numpy as np
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: ref["x"]})[0]
    except Exception as exc:  # a peer's output that onnxruntime refuses is a result too
        return "onnxruntime fails: " + str(exc).split(":")[-1].strip()[:80]
    return f"{float(np.abs(got - ref['y']).max()):.1e}"


def _run(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed:\n{proc.stderr[-2000:]}")
    return took


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    precompile_modelport()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    tf2onnx_ok = BENCH_PY.exists() and subprocess.run(
        [str(BENCH_PY), "-c", "import tf2onnx"], capture_output=True, env=env).returncode == 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-c", _MAKE, tmp], check=True, env=env,
                       capture_output=True)
        for name in ("lstm2_lowered", "lstm2_functional"):
            pb = f"{tmp}/{name}.pb"
            ref = dict(np.load(f"{tmp}/{name}.npz"))
            runs = {"modelport": [sys.executable, "-m", "modelport", "convert", pb, "-o",
                                  f"{tmp}/{name}_mp.onnx", "--force", "--quiet"]}
            if tf2onnx_ok:
                runs["tf2onnx"] = [str(BENCH_PY), "-m", "tf2onnx.convert", "--graphdef", pb,
                                   "--inputs", str(ref["input"]), "--outputs",
                                   str(ref["output"]), "--opset", "17", "--output",
                                   f"{tmp}/{name}_tf2onnx.onnx"]
            times: dict[str, list[float]] = {t: [] for t in runs}
            failed: dict[str, str] = {}
            for _ in range(args.repeat):
                for tool, cmd in runs.items():
                    if tool in failed:
                        continue
                    try:
                        times[tool].append(_run(cmd, env))
                    except RuntimeError as exc:
                        failed[tool] = str(exc).splitlines()[-1][:120]
            for tool in runs:
                out = f"{tmp}/{name}_{'mp' if tool == 'modelport' else tool}.onnx"
                if tool in failed:
                    rows.append((name, tool, failed[tool], "-", "-", "-"))
                    continue
                top, total = _nodes(out)
                rows.append((name, tool, f"{statistics.median(times[tool]):.2f} s", str(top),
                             str(total), _error(out, ref)))
                print(", ".join(rows[-1]), flush=True)
    print()
    print("| graph | converter | wall (median) | nodes (top level) | nodes (with bodies) | "
          "max abs error vs TensorFlow |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if not tf2onnx_ok:
        print("\ntf2onnx not found in .venv-bench: only modelport was measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
