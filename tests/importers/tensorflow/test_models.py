"""Models built here with TensorFlow (Keras 3 layers frozen with
convert_variables_to_constants_v2 and exported with model.export(); plain TF ops; a TF 1-style
graph; a tf.Module with two signatures), converted where TensorFlow cannot be imported, and
compared with TensorFlow's outputs on seeded inputs (rtol=1e-3, atol=1e-4)."""

from __future__ import annotations

import pytest

from tests.oracles import assert_close, run_onnx

CASES = ["cnn", "cnn_export", "cnn_pbtxt", "mlp", "mlp_export", "transformer",
         "transformer_export", "slicing", "shapes", "padding", "math_ops", "reductions",
         "gathers", "images", "products", "tf1", "two_default", "two_embed"]


@pytest.mark.parametrize("name", CASES)
def test_matches_tensorflow(built, name):
    case = built["cases"][name]
    assert built["results"][name] == "ok", built["results"][name]
    got = run_onnx(built["folder"] / f"{name}.onnx", case.feeds)
    assert set(got) == set(case.expected), (sorted(got), sorted(case.expected))
    for key, want in case.expected.items():
        assert_close(got[key], want, case.rtol, case.atol, name=f"{name}:{key}")


def test_io_names_are_tensor_names_and_signature_keys(built):
    import onnx

    tf1 = onnx.load(built["folder"] / "tf1.onnx", load_external_data=False)
    assert [i.name for i in tf1.graph.input] == ["images"]
    assert [o.name for o in tf1.graph.output] == ["probs", "scaled"]
    two = onnx.load(built["folder"] / "two_embed.onnx", load_external_data=False)
    assert [i.name for i in two.graph.input] == ["ids", "weights"]
    assert [o.name for o in two.graph.output] == ["pooled"]

