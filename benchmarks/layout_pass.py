"""Layout pass: Transpose and node counts of keras.applications CNNs before and after -O1.

Each model is built in-process with ``weights=None`` (seeded), saved as ``.keras`` and imported
twice by the Keras importer:

* ``per-layer``: ``extra={"keras_layout": "per_layer"}``, the importer's own layout solving
  off, so every layout-sensitive layer sits between two Transposes, as TensorFlow-style
  importers emit; counted as imported (-O0) and after -O1 (which runs the layout pass of
  graph_ir/passes/layout.py);
* ``no-fold``: the same with ``keras_fold_batchnorm: False``: BatchNormalization becomes a
  channels-last Mul/Add by constants, which the pass has to permute; after -O1;
* ``keras``: the importer's default (it solves layout itself), after -O1, for comparison.

Usage::

    .venv/bin/python -m benchmarks.layout_pass [--models MobileNetV2,ResNet50]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

PER_LAYER = {"keras_layout": "per_layer"}
NO_FOLD = {"keras_layout": "per_layer", "keras_fold_batchnorm": False}


def counts(model) -> tuple[int, int]:
    nodes = list(model.graph)
    return sum(n.op_type == "Transpose" for n in nodes), len(nodes)


def measure(name: str, workdir: str) -> dict:
    import keras

    from modelport.convert.pipeline import import_model
    from modelport.graph_ir.passes import optimize
    from modelport.importers.registry import LoadOptions

    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None)
    path = os.path.join(workdir, f"{name}.keras")
    model.save(path)
    row = {"model": name}
    imported, _ = import_model(path, options=LoadOptions(extra=dict(PER_LAYER)))
    row["per-layer -O0"] = counts(imported)
    start = time.perf_counter()
    optimize(imported, 1)
    row["optimize s"] = time.perf_counter() - start
    row["per-layer -O1"] = counts(imported)
    no_fold, _ = import_model(path, options=LoadOptions(extra=dict(NO_FOLD)))
    optimize(no_fold, 1)
    row["no-fold -O1"] = counts(no_fold)
    default, _ = import_model(path, options=LoadOptions())
    optimize(default, 1)
    row["keras -O1"] = counts(default)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="MobileNetV2,ResNet50")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models.split(","):
            rows.append(measure(name, workdir))
    print("| model | per-layer -O0 (Transposes / nodes) | per-layer -O1 | no-fold -O1 "
          "| keras importer -O1 | per-layer -O1 time (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{t} / {n}" for t, n in (r["per-layer -O0"], r["per-layer -O1"],
                                           r["no-fold -O1"], r["keras -O1"])]
        print(f"| {r['model']} | {' | '.join(cells)} | {r['optimize s']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
