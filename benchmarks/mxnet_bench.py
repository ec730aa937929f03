"""MXNet conversion benchmark: modelport against MXNet's own ONNX exporter, same run.

Gluon model-zoo resnet50_v1 and vgg11_bn (pretrained=False, every parameter random, exported
with ``HybridBlock.export`` by real MXNet 1.9.1) are converted by

- modelport:  ``python -m modelport convert PREFIX-symbol.json -o x.onnx --input data:1,3,224,224``
              (no MXNet in its environment), and
- mxnet.onnx: ``mxnet.onnx.export_model(sym, params, [(1, 3, 224, 224)], [float32], out)`` in
              the peer environment (``.venv-bench-mxnet``: mxnet==1.9.1 numpy==1.23.5
              onnx==1.13.1; created by ``--make-env``),

each in its own process; the table gives wall time and peak resident memory (GNU time's
maximum RSS), modelport's the median of ``--repeat`` runs. Both outputs are then compared with
MXNet's own outputs on a seeded input (rtol 1e-3, atol 1e-4).

Run:  .venv/bin/python benchmarks/mxnet_bench.py [--make-env] [--repeat 3] [--nets resnet50_v1]
Target (issue 16): modelport at least 20x faster; peak memory under 2x weight bytes + 150 MB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._common import precompile_modelport  # noqa: E402
from benchmarks.caffe_bench import run_measured, run_repeated  # noqa: E402

PEER_DIR = ROOT / ".venv-bench-mxnet"
PEER_PINS = ("mxnet==1.9.1", "numpy==1.23.5", "onnx==1.13.1")
EXPORT = r"""
import sys
import numpy as np
import mxnet as mx
prefix, out = sys.argv[1], sys.argv[2]
mx.onnx.export_model(prefix + "-symbol.json", prefix + "-0000.params",
                     [(1, 3, 224, 224)], [np.float32], out)
"""


def make_peer_env() -> str:
    python = PEER_DIR / "bin" / "python"
    if not python.is_file():
        subprocess.run(["python3", "-m", "venv", str(PEER_DIR)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PINS], check=True)
    return str(python)


def check(onnx_path: Path, io: Path) -> str:
    import onnxruntime as ort

    from modelport.convert.verify import compare

    with np.load(io) as data:
        x, want = data["in:data"], data["out:0"]
    so = ort.SessionOptions()
    so.log_severity_level = 3  # the peer's graph lists its weights as inputs: one warning each
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    c = compare("out", got, want, 1e-3, 1e-4)
    return "match" if c.passed else f"MISMATCH (max abs {c.max_abs:.3g})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-env", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--nets", nargs="*", default=["resnet50_v1", "vgg11_bn"])
    ap.add_argument("--work", default=None)
    ap.add_argument("--skip-peer", action="store_true")
    args = ap.parse_args()
    from modelport.convert.runners import mxnet_env

    mx_python = mxnet_env.create(quiet=True)
    peer = str(PEER_DIR / "bin" / "python")
    if args.make_env:
        peer = make_peer_env()
    work = Path(args.work or tempfile.mkdtemp(prefix="mxnet-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    precompile_modelport()
    build = ROOT / "tests" / "oracles" / "mxnet_build.py"
    print("| net | weights MB | tool | seconds | peak RSS MB | RSS / (2 x weights + 150) | "
          "speed-up | result |")
    print("|---|---|---|---|---|---|---|---|")
    for net in args.nets:
        prefix = work / net
        if not Path(f"{prefix}-0000.params").is_file():
            subprocess.run([mx_python, str(build), str(work), f"zoo:{net}:224"], check=True,
                           capture_output=True)
        wmb = os.path.getsize(f"{prefix}-0000.params") / 2**20
        budget = 2 * wmb + 150
        ours_out = work / f"{net}.modelport.onnx"
        cmd = [sys.executable, "-m", "modelport", "convert", f"{prefix}-symbol.json", "-o",
               str(ours_out), "--force", "--input", "data:1,3,224,224", "-q"]
        ours = run_repeated(cmd, args.repeat)
        rows = [("modelport", ours, ours_out)]
        if not args.skip_peer and Path(peer).is_file():
            peer_out = work / f"{net}.mxnet.onnx"
            rows.append(("mxnet.onnx.export_model",
                         run_measured([peer, "-c", EXPORT, str(prefix), str(peer_out)],
                                      timeout=1800), peer_out))
        base = rows[-1][1]["seconds"] if len(rows) > 1 and rows[-1][1]["rc"] == 0 else None
        for tool, r, out in rows:
            if r["rc"] != 0:
                print(f"| {net} | {wmb:.0f} | {tool} | {r['seconds']:.1f} | {r['peak_mb']:.0f} "
                      f"| | | failed: {r['error']} |")
                continue
            speed = f"{base / r['seconds']:.1f}x" if base else ""
            print(f"| {net} | {wmb:.0f} | {tool} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | "
                  f"{r['peak_mb'] / budget:.2f} | {speed} | {check(out, Path(f'{prefix}-io.npz'))} |",
                  flush=True)


if __name__ == "__main__":
    main()
