"""Caffe conversion benchmark: modelport against the floor and the PyPI converters.

For each big net (the largest corpus definition, Inception-ResNet-v2, and VGG-16 with a
~550 MB caffemodel of seeded random weights) every tool runs in its own process; the table gives
wall time and peak resident memory (ru_maxrss of that process):

- floor:       parse the caffemodel with protobuf (this project's schema) and write every
               blob's bytes to a file; no graph, no checks. Any converter must do at least this.
- importer only: modelport's Caffe importer builds the graph and every (lazy) weight is
               written to a file: the importer's share, comparable with the floor.
- modelport:   ``python -m modelport convert deploy.prototxt --weights w.caffemodel -o x.onnx``
               (default -O1, and -O0: import and export only, without the graph optimiser)
- caffe2onnx:  ``python -m caffe2onnx.convert`` (PyPI caffe2onnx 2.0.1)
- caffe-onnx:  ``src.cli`` of PyPI caffe-onnx 0.1.2

The peers live in a separate venv (``--peer-python``, default .venv-bench-caffe/bin/python),
since they pin protobuf 3 / old onnx. Then every corpus net that OpenCV reads is converted
by each tool and the result compared with OpenCV DNN (rtol 1e-3, atol 1e-4) on a seeded input.

Big nets: each of modelport's tools and the floor run ``--repeat`` times (default 3) and the
table gives median time and memory; the peers run once.

Run:  .venv/bin/python benchmarks/caffe_bench.py [--skip-corpus] [--work DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._common import precompile_modelport  # noqa: E402

BIG = ["soeaver_deploy_inception-resnet-v2", "soeaver_deploy_vgg16-tf"]

FLOOR = r"""
import sys, numpy as np
sys.path.insert(0, sys.argv[3])
from modelport.importers.caffe._pb import caffe_pb2
net = caffe_pb2.NetParameter()
with open(sys.argv[1], "rb") as f:
    net.ParseFromString(f.read())
with open(sys.argv[2], "wb") as out:
    for layer in list(net.layer) + list(net.layers):
        for blob in layer.blobs:
            np.asarray(blob.data, dtype=np.float32).tofile(out)
"""

IMPORTER_ONLY = r"""
import sys
sys.path.insert(0, sys.argv[4])
from modelport.importers.caffe.load import load
from modelport.importers.registry import LoadOptions
model = load(sys.argv[1], LoadOptions(weights=sys.argv[2]))
with open(sys.argv[3], "wb") as out:
    for value in model.graph.initializers.values():
        out.write(value.const_value.tobytes())
"""

CAFFE_ONNX = r"""
import sys
sys.argv = ["caffe-onnx", sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]]
from src.cli import main
main()
"""


def run_measured(cmd: list[str], timeout: float = 600) -> dict:
    import tempfile
    import threading

    # Peak RSS comes from GNU time: a child's own ru_maxrss can include the (large) RSS of
    # this process at fork time.
    fd, rss_file = tempfile.mkstemp(suffix=".rss")
    os.close(fd)
    cmd = ["/usr/bin/time", "-f", "%M", "-o", rss_file, *cmd]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, cwd=ROOT,
                                start_new_session=True)

        def kill_group() -> None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill_group)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except KeyboardInterrupt:
            kill_group()
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
        out_f.seek(0)
        err_f.seek(0)
        out = out_f.read().decode(errors="replace")
        err = err_f.read().decode(errors="replace")
    rc = os.waitstatus_to_exitcode(status)
    try:
        with open(rss_file) as f:
            peak_kb = int(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        peak_kb = usage.ru_maxrss
    os.unlink(rss_file)
    error = "" if rc == 0 else (err.strip().splitlines() or [f"exit status {rc}"])[-1][:200]
    if rc < 0 and seconds >= timeout:
        error = f"killed after {timeout:.0f}s"
    return {"seconds": seconds, "peak_mb": peak_kb / 1024, "rc": rc, "error": error,
            "stdout": out[-300:]}


PEERS = ("caffe2onnx", "caffe-onnx")


def run_repeated(cmd: list[str], repeat: int) -> dict:
    """``run_measured`` ``repeat`` times: median seconds and peak memory of the runs (the first
    failing run is returned as it is)."""
    runs = []
    for _ in range(max(1, repeat)):
        r = run_measured(cmd)
        if r["rc"] != 0:
            return r
        runs.append(r)
    out = dict(runs[-1])
    out["seconds"] = statistics.median(r["seconds"] for r in runs)
    out["peak_mb"] = statistics.median(r["peak_mb"] for r in runs)
    out["runs"] = [round(r["seconds"], 2) for r in runs]
    return out


def tool_commands(tool: str, proto: Path, weights: Path, out: Path, peer_python: str):
    main_python = str(ROOT / ".venv" / "bin" / "python")
    if tool == "floor":
        return [main_python, "-c", FLOOR, str(weights), str(out) + ".bin", str(ROOT)], out
    if tool == "importer only":
        return [main_python, "-c", IMPORTER_ONLY, str(proto), str(weights), str(out) + ".bin",
                str(ROOT)], out
    if tool in ("modelport", "modelport -O0"):
        level = ["-O0"] if tool.endswith("-O0") else []
        return [main_python, "-m", "modelport", "convert", str(proto), "--weights", str(weights),
                "-o", str(out), "--force", "-q", *level], out
    if tool == "caffe2onnx":
        return [peer_python, "-m", "caffe2onnx.convert", "--prototxt", str(proto),
                "--caffemodel", str(weights), "--onnx", str(out)], out
    if tool == "caffe-onnx":
        return [peer_python, "-c", CAFFE_ONNX, str(proto), str(weights), out.stem,
                str(out.parent)], out
    raise ValueError(tool)


def batch1_shapes(proto: Path) -> dict[str, list[int]]:
    from tests.importers.caffe.test_corpus import _batch1

    return _batch1(proto)


def batch1_prototxt(proto: Path, work: Path) -> Path:
    """A copy of the prototxt with batch size 1 (the peers read the shapes from the file)."""
    from google.protobuf import text_format

    from modelport.importers.caffe.proto import read_net

    net, _ = read_net(str(proto))
    for shape in net.input_shape:
        shape.dim[0] = 1
    if len(net.input_dim) >= 4:
        for i in range(0, len(net.input_dim), 4):
            net.input_dim[i] = 1
    for layer in net.layer:
        if layer.type == "Input":
            for shape in layer.input_param.shape:
                shape.dim[0] = 1
    out = work / proto.name
    out.write_text(text_format.MessageToString(net))
    return out


def ensure_weights(proto: Path, work: Path, outputs=None) -> Path:
    from tests.oracles.caffe_write import random_caffemodel

    weights = work / (proto.stem + ".caffemodel")
    if not weights.exists():
        partial = weights.with_suffix(f".{os.getpid()}.partial")
        random_caffemodel(proto, partial, seed=0, outputs=outputs)
        partial.replace(weights)  # atomic: a concurrent run never sees half a file
    return weights


def check_against_opencv(onnx_path: Path, proto: Path, weights: Path) -> tuple[bool, str]:
    import cv2
    import onnxruntime as ort

    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        sess = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        return False, f"onnxruntime cannot load: {str(exc).splitlines()[0][:120]}"
    net = cv2.dnn.readNetFromCaffe(str(proto), str(weights))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    rng = np.random.default_rng(1)
    feeds = {}
    for inp in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        feeds[inp.name] = rng.standard_normal(shape).astype(np.float32)
    cv_inputs = batch1_shapes(proto)
    if len(feeds) != len(cv_inputs):
        return False, "input count differs"
    for (_name, value), cv_name in zip(feeds.items(), cv_inputs):
        net.setInput(value, cv_name)
    names = net.getUnconnectedOutLayersNames()
    want = [np.asarray(v) for v in net.forward(names)]
    # OpenCV pads DetectionOutput and orders it its own way: the Caffe layout, as in the tests.
    from modelport.convert.runners.caffe_opencv import trim_detections

    want = [trim_detections(w) if net.getLayer(n).type == "DetectionOutput" else w
            for n, w in zip(names, want)]
    try:
        got = sess.run(None, feeds)
    except Exception as exc:
        return False, f"onnxruntime fails: {str(exc).splitlines()[0][:120]}"
    if len(got) != len(want):
        return False, f"{len(got)} outputs, OpenCV has {len(want)}"
    for g, w in zip(got, want):
        if g.size != w.size:
            return False, f"output shape {list(g.shape)} vs {list(w.shape)}"
        if not np.allclose(g.reshape(w.shape), w, rtol=1e-3, atol=1e-4):
            return False, f"max abs error {np.abs(g.reshape(w.shape) - w).max():.3g}"
    return True, "ok"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=os.environ.get("MODELPORT_CORPUS",
                                                      str(ROOT / ".." / "shared" / "corpus")))
    ap.add_argument("--work", default="/tmp/modelport-caffe-bench")
    ap.add_argument("--peer-python", default=str(ROOT / ".venv-bench-caffe" / "bin" / "python"))
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--skip-corpus", action="store_true")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--no-peers", action="store_true", help="skip caffe2onnx and caffe-onnx")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each of our tools per big net; the table gives medians "
                         "(the peers, which take minutes, run once)")
    ap.add_argument("--only", nargs="*", default=None, help="corpus nets (stems) to compare")
    ap.add_argument("--peer-timeout", type=float, default=300,
                    help="seconds each tool may take on one corpus net")
    ap.add_argument("--corpus-minutes", type=float, default=240,
                    help="stop starting corpus nets after this many minutes")
    args = ap.parse_args()
    precompile_modelport()
    corpus = Path(args.corpus) / "caffe"
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    peers_ok = Path(args.peer_python).exists()
    tools = ["floor", "importer only", "modelport", "modelport -O0"] + (
        ["caffe2onnx", "caffe-onnx"] if peers_ok and not args.no_peers else [])
    results: dict = {"big": {}, "corpus": {}}

    if not args.skip_big:
        print("| net | weights MB | tool | seconds | peak RSS MB | x floor time | RSS / weights | result |")
        print("|---|---|---|---|---|---|---|---|")
        for stem in BIG:
            proto = batch1_prototxt(corpus / f"{stem}.prototxt", work)
            weights = ensure_weights(proto, work)
            wmb = weights.stat().st_size / 1e6
            floor_s = None
            for tool in tools:
                out = work / f"{stem}.{tool.replace(' ', '')}.onnx"
                cmd, out = tool_commands(tool, proto, weights, out, args.peer_python)
                r = run_repeated(cmd, args.repeat if tool not in PEERS else 1)
                if tool == "floor":
                    floor_s = r["seconds"]
                status = "ok" if r["rc"] == 0 else f"failed: {r['error']}"
                if r["rc"] == 0 and tool not in ("floor", "importer only"):
                    ok, why = check_against_opencv(out, proto, weights)
                    status = "matches OpenCV" if ok else f"converted, differs: {why}"
                results["big"].setdefault(stem, {})[tool] = {**r, "status": status}
                print(f"| {stem} | {wmb:.0f} | {tool} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | "
                      f"{r['seconds'] / floor_s:.2f} | {r['peak_mb'] / wmb:.2f} | {status} |",
                      flush=True)

    if not args.skip_corpus:
        import cv2

        print()
        counts = {t: 0 for t in tools if t not in ("floor", "importer only", "modelport -O0")}
        print("| corpus net | weights MB | " + " | ".join(counts) + " |")
        print("|---|---|" + "---|" * len(counts))
        readable = 0
        nets = []
        for proto_path in sorted(corpus.glob("*.prototxt")):
            stem = proto_path.stem
            if args.only and stem not in args.only:
                continue
            proto = batch1_prototxt(proto_path, work)
            try:
                if stem.startswith("mtcnn"):
                    weights = corpus / f"{stem}.caffemodel"
                else:
                    weights = ensure_weights(proto, work)
                cv2.dnn.readNetFromCaffe(str(proto), str(weights))
            except Exception:
                continue  # OpenCV cannot read it (or it has layers nobody translates)
            nets.append((weights.stat().st_size, stem, proto, weights))
        deadline = time.time() + args.corpus_minutes * 60
        not_run = []
        for size, stem, proto, weights in sorted(nets):  # smallest first
            if time.time() > deadline:
                not_run.append(stem)
                continue
            readable += 1
            row = []
            for tool in counts:
                out = work / f"{stem}.{tool}.onnx"
                cmd, out = tool_commands(tool, proto, weights, out, args.peer_python)
                r = run_measured(cmd, timeout=args.peer_timeout)
                if r["rc"] != 0:
                    cell = "fails: " + r["error"][:60].replace("|", "/").replace("\n", " ")
                elif not out.exists():
                    cell = "wrote no model: " + (r["stdout"].strip().splitlines() or [""])[-1][:50]
                else:
                    ok, why = check_against_opencv(out, proto, weights)
                    cell = "ok" if ok else why[:60]
                    counts[tool] += ok
                results["corpus"].setdefault(stem, {})[tool] = cell
                row.append(cell)
            print(f"| {stem} | {size / 1e6:.0f} | " + " | ".join(row) + " |", flush=True)
        print(f"\nnets OpenCV reads (with seeded random weights): {len(nets)}; compared here: "
              f"{readable}" + (f"; not run (time limit): {', '.join(not_run)}" if not_run else ""))
        for tool, n in counts.items():
            print(f"{tool}: {n}/{readable} convert and match OpenCV")
        results["corpus_counts"] = {"readable": readable, **counts}
    if not peers_ok:
        print(f"\npeer venv {args.peer_python} not found: peers not run")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
