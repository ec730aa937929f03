"""modelport -O2 against onnxslim and onnxsim on dynamic-batch ``torch.onnx`` exports.

Models: the PyTorch test models (tests/importers/pytorch/models.py) and, when ``transformers``
is installed, Hugging Face architectures built from small configs with random weights
(ResNet, MobileNetV2, ConvNeXt, ViT, a BERT encoder, a GPT-2 decoder). Each is exported once
with ``torch.onnx.export(..., dynamo=True)`` and a dynamic batch dim; that file is the
baseline, and each optimiser is applied to the same file:

- ``modelport``: ``modelport.convert(file, out, level=2)`` (the whole pipeline);
- ``onnxslim``: ``onnxslim.slim``;
- ``onnxsim``: ``onnxsim.simplify``, in this interpreter when it imports onnxsim, else in
  ``.venv-bench-torch``; its column says n/a when neither has it.

Per model it prints node counts (ratio to the baseline), onnxruntime CPU latency ratios
(one thread, batch 1, variants interleaved call by call in shuffled order, medians;
``--rounds 0`` skips timing) and checks every variant's outputs against the baseline's at
batch 3 (``rtol=1e-3, atol=1e-4``).

    PYTHONPATH=. .venv/bin/python benchmarks/onnx_optimizer_quality.py [--rounds 5] [--json F]

Exit status 1 if modelport's output has more nodes than the better of onnxslim and onnxsim
on any model, or if any variant's outputs differ from the baseline's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from pytorch_graph_quality import (  # noqa: E402
    count_nodes,
    onnxsim_available,
    session,
    simplify,
    time_variants,
)


def hf_models() -> dict:
    """name -> (module factory, example inputs); empty when transformers is missing."""
    try:
        import torch
        import transformers as T
    except ImportError:
        print("transformers: not installed; the Hugging Face models are skipped",
              file=sys.stderr)
        return {}

    def image():
        return {"pixel_values": torch.randn(2, 3, 32, 32)}

    def tokens():
        return {"input_ids": torch.randint(0, 100, (2, 8), generator=torch.Generator()
                                           .manual_seed(0))}

    return {
        "hf-resnet": (lambda: T.ResNetForImageClassification(T.ResNetConfig(
            embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic",
            num_labels=10)), image),
        "hf-mobilenetv2": (lambda: T.MobileNetV2ForImageClassification(T.MobileNetV2Config(
            image_size=32, depth_multiplier=0.35, num_labels=10)), image),
        "hf-convnext": (lambda: T.ConvNextForImageClassification(T.ConvNextConfig(
            hidden_sizes=[16, 32], depths=[1, 1], num_stages=2, num_labels=10,
            image_size=32)), image),
        "hf-vit": (lambda: T.ViTForImageClassification(T.ViTConfig(
            image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=64, num_labels=10)), image),
        "hf-bert": (lambda: T.BertModel(T.BertConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=64)), tokens),
        "hf-gpt2": (lambda: T.GPT2LMHeadModel(T.GPT2Config(
            vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64, use_cache=False,
            bos_token_id=0, eos_token_id=0)), tokens),
    }


def test_models() -> dict:
    import torch

    from tests.importers.pytorch.models import MODELS

    def inputs_for(shapes):
        return lambda: {k: torch.randn(*s) for k, s in shapes.items()}

    return {name: (factory, inputs_for(shapes)) for name, (factory, shapes) in MODELS.items()}


def export(factory, make_inputs, path: str) -> None:
    import torch

    torch.manual_seed(0)
    module = factory().eval()
    inputs = make_inputs()
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (), kwargs=inputs, dynamo=True, verbose=False,
                                    dynamic_shapes={k: {0: batch} for k in inputs})
    program.save(path)


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


def feeds_for(path: str, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for value in onnx.load(path, load_external_data=False).graph.input:
        t = value.type.tensor_type
        shape = [batch if d.dim_param or not d.dim_value else d.dim_value for d in t.shape.dim]
        if t.elem_type == onnx.TensorProto.INT64:
            feeds[value.name] = rng.integers(0, 50, shape).astype(np.int64)
        else:
            feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def main() -> int:
    import modelport

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    models = {**test_models(), **hf_models()}
    names = args.models.split(",") if args.models else list(models)
    try:
        import onnxslim
    except ImportError:
        onnxslim = None
        print("onnxslim: not installed; its column is skipped", file=sys.stderr)
    rows, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            paths = {"torch": os.path.join(tmp, f"{name}.onnx")}
            export(*models[name], paths["torch"])
            paths["modelport-O2"] = os.path.join(tmp, f"{name}.mp2.onnx")
            result = modelport.convert(paths["torch"], paths["modelport-O2"], level=2,
                                       force=True)
            if onnxslim is not None:
                paths["onnxslim"] = os.path.join(tmp, f"{name}.slim.onnx")
                with contextlib.redirect_stdout(io.StringIO()):
                    onnx.save(onnxslim.slim(onnx.load(paths["torch"])), paths["onnxslim"])
            paths["onnxsim"] = os.path.join(tmp, f"{name}.sim.onnx")
            try:
                if not run_onnxsim(paths["torch"], paths["onnxsim"]):
                    del paths["onnxsim"]
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                print(f"{name}: onnxsim failed: {exc}", file=sys.stderr)
                del paths["onnxsim"]
            nodes = {k: count_nodes(onnx.load(p).graph) for k, p in paths.items()}
            sessions = {k: session(p) for k, p in paths.items()}
            check = feeds_for(paths["torch"], 3)
            want = sessions["torch"].run(None, check)
            errors, ok = {}, True
            for key, s in sessions.items():
                got = s.run(None, check)
                errors[key] = max(float(np.abs(g.astype(np.float64) - w).max())
                                  for g, w in zip(got, want))
                ok &= all(np.allclose(g, w, rtol=1e-3, atol=1e-4) for g, w in zip(got, want))
            latency = (time_variants(sessions, feeds_for(paths["torch"], 1), args.rounds,
                                     args.calls) if args.rounds > 0 else {})
            peers = [nodes[k] for k in ("onnxslim", "onnxsim") if k in nodes]
            if not ok or (peers and nodes["modelport-O2"] > min(peers)):
                failed.append(name)
            rows.append({"model": name, "nodes": nodes, "max_abs_err": errors,
                         "numerics_ok": ok, "latency_s": latency,
                         "passes": result.optimization["passes"]})
            print(f"{name}: done", file=sys.stderr, flush=True)
    variants = ["modelport-O2", "onnxslim", "onnxsim"]
    header = ["model", "torch nodes"] + [f"{v} nodes" for v in variants]
    if args.rounds > 0:
        header += [f"{v} latency" for v in variants]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        n, lat = row["nodes"], row["latency_s"]
        cells = [row["model"], str(n["torch"])]
        cells += [f"{n[v]} ({n[v] / n['torch']:.2f})" if v in n else "n/a" for v in variants]
        if args.rounds > 0:
            cells += [f"{lat[v] / lat['torch']:.2f}" if v in lat else "n/a" for v in variants]
        print("| " + " | ".join(cells) + " |")
    worst = max(max(r["max_abs_err"].values()) for r in rows)
    print(f"\nmax abs error of any variant against the torch.onnx export: {worst:.2g}")
    print("node cells: count (ratio to torch.onnx); latency cells: ratio to torch.onnx; "
          "< 1 is better")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    if failed:
        print(f"modelport -O2 has more nodes than the better peer, or outputs that differ, "
              f"on: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
