"""Keras .h5 -> ONNX: modelport against tf2onnx and against the I/O floor.

For ResNet-50, MobileNetV2 and VGG-16 (``weights=None``, seeded, saved by tf_keras as Keras 2
``.h5`` files, which tf2onnx reads), each converter runs in its own process, measured for wall
time (process start to exit, interpreter start-up included) and peak resident memory
(``ru_maxrss`` of that process):

* modelport: ``python -m modelport convert model.h5 -o out.onnx`` (default -O1);
* tf2onnx:   ``python -m tf2onnx.convert --keras model.h5 --output out.onnx --opset 17``, run
  from a separate virtual environment (``.venv-bench``: tf2onnx installed there, TensorFlow
  shared from the main environment), with ``TF_USE_LEGACY_KERAS=1``;
* floor:     a process that opens the file with h5py, reads every weight dataset once and
  writes its bytes to an output file (what any converter must at least do).

``--baseline DIR`` adds another copy of modelport (a source tree, e.g. ``git archive REV | tar
-x -C DIR``), run the same way from ``DIR``: before/after figures from one round-robin.

Each tool runs ``--repeat`` times (default 3) per model, round-robin (each round starting with
the next tool, so that each runs in every position), each run after an ``os.sync()``; the table gives the median wall time and median peak memory. modelport's bytecode is compiled
first, as installing a wheel would.

Usage::

    .venv/bin/python -m benchmarks.keras_bench [--models ResNet50,MobileNetV2,VGG16]
        [--repeat 3] [--json results.json] [--tools floor,modelport] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script (benchmarks/run.py does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import BENCH_PY, ROOT, median_run, precompile_modelport  # noqa: E402

MODELS = ["ResNet50", "MobileNetV2", "VGG16"]

_MAKE = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tf_keras
tf_keras.utils.set_random_seed(0)
model = getattr(tf_keras.applications, sys.argv[1])(weights=None)
model.save(sys.argv[2])
"""

_FLOOR = """
import sys, h5py, numpy as np
total = 0
with h5py.File(sys.argv[1], "r") as f, open(sys.argv[2], "wb") as out:
    def visit(name, obj):
        global total
        if isinstance(obj, h5py.Dataset):
            data = obj[()]
            out.write(np.ascontiguousarray(data).tobytes())
            total += data.nbytes
    f["model_weights"].visititems(visit)
print(total)
"""


class MemoryCapExceeded(RuntimeError):
    pass


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_measured(cmd: list[str], env: dict | None = None,
                 cap: int | None = None, cwd: str | os.PathLike = ROOT) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of one process.

    A process whose resident memory passes ``cap`` bytes is killed (MemoryCapExceeded) before
    it can bring the machine's OOM killer down on other processes.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        over = maxrss = 0
        while True:
            # Reap with wait4 ourselves: its rusage has the child's peak RSS.
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                maxrss = usage.ru_maxrss * 1024  # Linux reports KiB
                break
            if cap and not over and _rss(proc.pid) > cap:
                over = _rss(proc.pid)
                proc.kill()
            time.sleep(0.02)
        wall = time.perf_counter() - start
        if over:
            raise MemoryCapExceeded(f"killed after {wall:.0f} s at {over / 2**30:.1f} GiB RSS")
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])}... failed ({proc.returncode}):\n"
                               f"{err.read().decode()[-2000:]}")
        return wall, maxrss, out.read().decode()


def weight_bytes(path: str) -> int:
    import h5py

    total = 0
    with h5py.File(path, "r") as f:
        def visit(_name, obj):
            nonlocal total
            if isinstance(obj, h5py.Dataset):
                total += obj.size * obj.dtype.itemsize
        f["model_weights"].visititems(visit)
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per tool and model; the table gives their medians")
    ap.add_argument("--json")
    ap.add_argument("--tools", default="floor,modelport,tf2onnx")
    ap.add_argument("--mem-cap-gib", type=float, default=8.0,
                    help="kill a converter whose RSS passes this (protects a shared machine)")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "modelport-bench"))
    ap.add_argument("--baseline", help="another modelport source tree to time beside this one")
    args = ap.parse_args(argv)
    precompile_modelport()
    if args.baseline:
        import compileall

        compileall.compile_dir(os.path.join(args.baseline, "modelport"), quiet=1)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    tf2onnx_ok = BENCH_PY.exists() and subprocess.run(
        [str(BENCH_PY), "-c", "import tf2onnx"], capture_output=True).returncode == 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            h5 = cache / f"{name}_tf_keras.h5"
            if not h5.exists():
                subprocess.run([sys.executable, "-c", _MAKE, name, str(h5)], check=True,
                               env=env, capture_output=True)
            wbytes = weight_bytes(str(h5))
            row: dict = {"model": name, "weight_bytes": wbytes}
            runs = {
                "floor": [sys.executable, "-c", _FLOOR, str(h5), f"{tmp}/floor.bin"],
                "modelport": [sys.executable, "-m", "modelport", "convert", str(h5), "-o",
                              f"{tmp}/mp.onnx", "--force", "--quiet"],
            }
            if args.baseline:
                runs["baseline"] = [sys.executable, "-m", "modelport", "convert", str(h5), "-o",
                                    f"{tmp}/base.onnx", "--force", "--quiet"]
            if tf2onnx_ok and "tf2onnx" in args.tools:
                runs["tf2onnx"] = [str(BENCH_PY), "-m", "tf2onnx.convert", "--keras", str(h5),
                                   "--output", f"{tmp}/tf2onnx.onnx", "--opset", "17"]
            cap = int(args.mem_cap_gib * 2**30)
            samples: dict[str, list[tuple[float, int]]] = {tool: [] for tool in runs}
            # Round-robin over the tools, each run starting with no dirty pages left by the
            # previous one's output (the page cache's write-back would otherwise land on
            # whichever run comes next).
            # Each round starts with the next tool, so that every tool runs in every position
            # equally often: a run straight after one that wrote a large file is slower
            # (VGG-16: 2.4-3.5 s where the same code takes 1.2-1.3 s one place later).
            order = list(runs)
            for r in range(args.repeat):
                for tool in order[r % len(order):] + order[:r % len(order)]:
                    cmd = runs[tool]
                    if f"{tool}_error" in row:
                        continue
                    tool_env = dict(env, TF_USE_LEGACY_KERAS="1") if tool == "tf2onnx" else env
                    os.sync()
                    try:
                        wall, peak, _ = run_measured(
                            cmd, tool_env, cap, args.baseline if tool == "baseline" else ROOT)
                    except MemoryCapExceeded as exc:
                        row[f"{tool}_error"] = f"over the {args.mem_cap_gib:g} GiB cap ({exc})"
                        continue
                    samples[tool].append((wall, peak))
            for tool, got in samples.items():
                if got and f"{tool}_error" not in row:
                    row[f"{tool}_s"], row[f"{tool}_peak"] = median_run(got)
                    row[f"{tool}_runs"] = [round(w, 2) for w, _ in got]
            rows.append(row)
            print(_line(row), flush=True)
    print()
    print(table(rows, tf2onnx_ok and "tf2onnx" in args.tools, bool(args.baseline)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB"


def _line(row: dict) -> str:
    return ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in row.items())


def table(rows: list[dict], with_tf2onnx: bool, with_baseline: bool = False) -> str:
    head = ["model", "weights", "floor", "modelport", "modelport / floor", "modelport peak RSS",
            "peak / weights"]
    if with_baseline:
        head += ["baseline", "baseline / floor", "baseline peak RSS"]
    if with_tf2onnx:
        head += ["tf2onnx", "tf2onnx peak RSS", "speed-up vs tf2onnx"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], _mb(r["weight_bytes"]), f"{r['floor_s']:.2f} s",
                 f"{r['modelport_s']:.2f} s", f"{r['modelport_s'] / r['floor_s']:.2f}x",
                 _mb(r["modelport_peak"]), f"{r['modelport_peak'] / r['weight_bytes']:.2f}x"]
        if with_baseline:
            cells += [f"{r['baseline_s']:.2f} s", f"{r['baseline_s'] / r['floor_s']:.2f}x",
                      _mb(r["baseline_peak"])]
        if with_tf2onnx and "tf2onnx_s" in r:
            cells += [f"{r['tf2onnx_s']:.2f} s", _mb(r["tf2onnx_peak"]),
                      f"{r['tf2onnx_s'] / r['modelport_s']:.1f}x"]
        elif with_tf2onnx:
            cells += [r.get("tf2onnx_error", "failed"), "-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
