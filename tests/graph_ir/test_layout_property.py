"""Property test for the layout pass: random small chains of Transpose, element-wise ops (with
broadcast constants and two-branch operands), Concat, reductions, Softmax, Pad, Slice, Split and
Unsqueeze/Squeeze keep their outputs through the whole optimiser at -O1 and -O2, and never gain
a Transpose."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnx_ir as ir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

from modelport.graph_ir import validate
from modelport.graph_ir.passes import optimize
from tests.conftest import f32, init, make_model
from tests.oracles import assert_close, run_onnx

STEPS = ("transpose", "relu", "sigmoid", "add_const", "mul_const", "binary", "concat",
         "reduce", "softmax", "clip", "pad", "slice", "split", "unsqueeze")


@st.composite
def chains(draw):
    rank = draw(st.integers(3, 4))
    shape = [draw(st.integers(1, 4)) for _ in range(rank)]
    steps = draw(st.lists(st.sampled_from(STEPS), min_size=2, max_size=9))
    return shape, steps, draw(st.integers(0, 2**31 - 1)), draw(st.sampled_from([17, 18]))


def build(shape, steps, seed, opset):
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    # Start the way a channels-last importer does: the input goes through a Transpose.
    perm = [int(i) for i in rng.permutation(len(shape))]
    nodes.append(helper.make_node("Transpose", ["x"], ["v0"], perm=perm))
    cur, cur_shape = "v0", [shape[p] for p in perm]
    history = [(cur, cur_shape)]
    for k, step in enumerate(steps):
        out = f"v{k + 1}"
        rank = len(cur_shape)
        if step == "transpose" or (step == "concat" and rank < 2):
            perm = [int(i) for i in rng.permutation(rank)]
            nodes.append(helper.make_node("Transpose", [cur], [out], perm=perm))
            cur_shape = [cur_shape[p] for p in perm]
        elif step in ("relu", "sigmoid"):
            nodes.append(helper.make_node(step.capitalize(), [cur], [out]))
        elif step == "clip":
            nodes.append(helper.make_node("Clip", [cur, "lo", "hi"], [out]))
            if not any(i.name == "lo" for i in inits):
                inits += [init("lo", np.float32(-0.3)), init("hi", np.float32(0.6))]
        elif step in ("add_const", "mul_const"):
            # A broadcast constant: a suffix of the shape, some dims set to 1.
            cut = int(rng.integers(0, rank))
            cshape = [d if rng.random() < 0.7 else 1 for d in cur_shape[cut:]]
            name = f"c{k}"
            inits.append(init(name, rng.standard_normal(cshape).astype(np.float32)))
            op = "Add" if step == "add_const" else "Mul"
            nodes.append(helper.make_node(op, [cur, name], [out]))
        elif step == "binary":
            # An earlier value with the same shape in another layout, brought to this one.
            other = None
            for name, oshape in history:
                for perm in itertools.permutations(range(len(oshape))):
                    if [oshape[p] for p in perm] == cur_shape and name != cur:
                        other = (name, list(perm))
                        break
                if other:
                    break
            if other is None:
                nodes.append(helper.make_node("Sub", [cur, cur], [out]))
            else:
                tname = f"t{k}"
                nodes.append(helper.make_node("Transpose", [other[0]], [tname], perm=other[1]))
                nodes.append(helper.make_node("Add", [cur, tname], [out]))
        elif step == "concat":
            axis = int(rng.integers(-rank, rank))
            nodes.append(helper.make_node("Concat", [cur, cur], [out], axis=axis))
            cur_shape = list(cur_shape)
            cur_shape[axis] *= 2
        elif step == "pad":
            pads = [int(v) for v in rng.integers(0, 2, 2 * rank)]
            pname = f"pads{k}"
            inits.append(init(pname, np.array(pads, np.int64)))
            nodes.append(helper.make_node("Pad", [cur, pname], [out]))
            cur_shape = [d + pads[i] + pads[i + rank] for i, d in enumerate(cur_shape)]
        elif step == "slice":
            axis = int(rng.integers(0, rank))
            if cur_shape[axis] < 2:
                nodes.append(helper.make_node("Neg", [cur], [out]))
            else:
                names = [f"{what}{k}" for what in ("st", "en", "ax")]
                for name, v in zip(names, (1, cur_shape[axis], axis - rank)):
                    inits.append(init(name, np.array([v], np.int64)))
                nodes.append(helper.make_node("Slice", [cur, *names], [out]))
                cur_shape = list(cur_shape)
                cur_shape[axis] -= 1
        elif step == "split" and max(cur_shape) < 2:
            nodes.append(helper.make_node("Neg", [cur], [out]))
        elif step == "split":
            axis = max(range(rank), key=lambda i: (cur_shape[i] >= 2, rng.random()))
            a, b = f"sa{k}", f"sb{k}"
            nodes.append(helper.make_node("Split", [cur], [a, b], axis=axis, num_outputs=2)
                         if opset >= 18 else helper.make_node("Split", [cur, f"sz{k}"], [a, b],
                                                               axis=axis))
            if opset < 18:
                half = cur_shape[axis] // 2
                inits.append(init(f"sz{k}", np.array([half, cur_shape[axis] - half], np.int64)))
            # Both halves meet again (swapped): the shape is kept.
            nodes.append(helper.make_node("Concat", [b, a], [out], axis=axis))
        elif step == "unsqueeze":
            if rank >= 5:
                nodes.append(helper.make_node("Relu", [cur], [out]))
            else:
                axis = int(rng.integers(0, rank + 1))
                aname, mid = f"ua{k}", f"u{k}"
                inits.append(init(aname, np.array([axis], np.int64)))
                nodes.append(helper.make_node("Unsqueeze", [cur, aname], [mid]))
                nodes.append(helper.make_node("Sigmoid", [mid], [f"us{k}"]))
                nodes.append(helper.make_node("Squeeze", [f"us{k}", aname], [out]))
        elif step == "softmax":
            axis = int(rng.integers(0, rank))
            nodes.append(helper.make_node("Softmax", [cur], [out], axis=axis))
        elif step == "reduce":
            if rank <= 2:
                nodes.append(helper.make_node("Relu", [cur], [out]))
            else:
                axes = sorted(int(a) for a in rng.choice(rank, int(rng.integers(1, 3)),
                                                         replace=False))
                keep = int(rng.integers(0, 2))
                if opset >= 18:
                    aname = f"axes{k}"
                    inits.append(init(aname, np.array(axes, np.int64)))
                    nodes.append(helper.make_node("ReduceMean", [cur, aname], [out],
                                                  keepdims=keep))
                else:
                    nodes.append(helper.make_node("ReduceMean", [cur], [out], axes=axes,
                                                  keepdims=keep))
                cur_shape = [1 if i in axes else d for i, d in enumerate(cur_shape)
                             if keep or i not in axes]
        cur = out
        history.append((cur, list(cur_shape)))
    # Leave the graph the way an importer would: back in the input's layout where ranks allow.
    outputs = [f32(cur, cur_shape)]
    if len(cur_shape) == len(shape):
        back = [int(i) for i in rng.permutation(len(cur_shape))]
        nodes.append(helper.make_node("Transpose", [cur], ["y"], perm=back))
        outputs = [f32("y", [cur_shape[p] for p in back])]
    return make_model(nodes, [f32("x", shape)], outputs, inits, opset=opset)


def count(model_proto, op="Transpose"):
    return sum(n.op_type == op for n in model_proto.graph.node)


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chains(), st.sampled_from([1, 2]))
def test_random_chains_keep_their_outputs(tmp_path, chain, level):
    shape, steps, seed, opset = chain
    proto = build(shape, steps, seed, opset)
    onnx.checker.check_model(proto)
    model = ir.serde.deserialize_model(proto)
    optimize(model, level)
    validate(model)
    after = ir.serde.serialize_model(model)
    assert count(after) <= count(proto)
    assert [o.name for o in after.graph.output] == [o.name for o in proto.graph.output]
    assert [i.name for i in after.graph.input] == ["x"]
    src, dst = tmp_path / "src.onnx", tmp_path / "dst.onnx"
    onnx.save(proto, src)
    onnx.save(after, dst)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    want, got = run_onnx(src, {"x": x}), run_onnx(dst, {"x": x})
    for name in want:
        assert_close(got[name], want[name], rtol=1e-4, atol=1e-5, name=name)
